-- A customer ends a booking early: the rest of its slot is freed for others (`during` is cut at the end, to
-- the class's granularity), and `booked_end` keeps the end that was booked, which the billing basis reads
-- (`booked` charges the reserved slot, `metered` its minimum share of it). NULL for a booking that ran its slot.
ALTER TABLE booking ADD COLUMN booked_end timestamptz;
ALTER TABLE booking ADD CONSTRAINT booking_booked_end_after CHECK (booked_end IS NULL OR booked_end > upper(during));

CREATE OR REPLACE VIEW booking_slot AS
SELECT id, device_id, organization_id, user_id, created_by, during, status, purpose, hourly_rate, gross,
       subsidy_program, subsidy_share, subsidy, net, override_reason, created_at, checked_in_at, finished_at,
       cancelled_at, cancelled_by, late_cancellation, fee, reference, revision, changed_at, booked_end
FROM booking;

CREATE OR REPLACE VIEW booking_detail AS
SELECT b.id, b.device_id, d.class_id, d.name AS device_name, b.organization_id, o.name AS organization_name,
       b.user_id, b.created_by, lower(b.during) AS start, upper(b.during) AS "end", b.status, b.purpose,
       b.hourly_rate, b.gross, b.subsidy_program, b.subsidy_share, b.subsidy, b.net, b.override_reason,
       b.created_at, b.checked_in_at, b.finished_at, b.cancelled_at, b.cancelled_by, b.late_cancellation, b.fee,
       b.updated_at, b.series_id, b.reference, b.revision, b.changed_at, b.booked_end
FROM booking b
JOIN device d ON d.id = b.device_id
JOIN org_profile o ON o.id = b.organization_id;
