-- booking's published interface: the only booking relations another package's SQL may read (oee; DESIGN.md's
-- package table says who may import booking), together with the function booking_open_hours (001). Plain
-- views over one table each, so the planner inlines them and queries through them keep their plans.
-- published: booking_slot, device_entry, device_class_entry, subsidy_program_entry, maintenance_slot
-- published: booking_open_hours

CREATE VIEW booking_slot AS
SELECT id, device_id, organization_id, user_id, created_by, during, status, purpose, hourly_rate, gross,
       subsidy_program, subsidy_share, subsidy, net, override_reason, created_at, checked_in_at, finished_at,
       cancelled_at, cancelled_by, late_cancellation, fee
FROM booking;

CREATE VIEW device_entry AS
SELECT id, class_id, name, hourly_rate, retired_at FROM device;

CREATE VIEW device_class_entry AS
SELECT id, name, name_zh, hourly_rate, billing_basis, metered_minimum_share, min_booking, max_booking, granularity,
       horizon_days, max_future_hours_per_org, late_cancellation, no_show_after, late_cancellation_fee_share,
       no_show_fee_share, retired_at
FROM device_class;

CREATE VIEW subsidy_program_entry AS
SELECT id, name, share, classes, valid_from, valid_to, annual_cap, retired_at FROM subsidy_program;

CREATE VIEW maintenance_slot AS
SELECT id, device_id, during, reason, created_by, created_at, cancelled_at FROM maintenance_window;

-- booking_detail (001) joined accounts' organization table itself; it reads accounts' published view now.
CREATE OR REPLACE VIEW booking_detail AS
SELECT b.id, b.device_id, d.class_id, d.name AS device_name, b.organization_id, o.name AS organization_name,
       b.user_id, b.created_by, lower(b.during) AS start, upper(b.during) AS "end", b.status, b.purpose,
       b.hourly_rate, b.gross, b.subsidy_program, b.subsidy_share, b.subsidy, b.net, b.override_reason,
       b.created_at, b.checked_in_at, b.finished_at, b.cancelled_at, b.cancelled_by, b.late_cancellation, b.fee
FROM booking b
JOIN device d ON d.id = b.device_id
JOIN org_profile o ON o.id = b.organization_id;
