-- Bookings move: a change keeps the booking's id (and its calendar UID) and counts a revision, which the
-- calendar sends as SEQUENCE and the reminders key on, so a moved booking is reminded again at its new time.
ALTER TABLE booking ADD COLUMN revision integer NOT NULL DEFAULT 0 CHECK (revision >= 0);
ALTER TABLE booking ADD COLUMN changed_at timestamptz;

CREATE OR REPLACE VIEW booking_slot AS
SELECT id, device_id, organization_id, user_id, created_by, during, status, purpose, hourly_rate, gross,
       subsidy_program, subsidy_share, subsidy, net, override_reason, created_at, checked_in_at, finished_at,
       cancelled_at, cancelled_by, late_cancellation, fee, reference, revision, changed_at
FROM booking;

CREATE OR REPLACE VIEW booking_detail AS
SELECT b.id, b.device_id, d.class_id, d.name AS device_name, b.organization_id, o.name AS organization_name,
       b.user_id, b.created_by, lower(b.during) AS start, upper(b.during) AS "end", b.status, b.purpose,
       b.hourly_rate, b.gross, b.subsidy_program, b.subsidy_share, b.subsidy, b.net, b.override_reason,
       b.created_at, b.checked_in_at, b.finished_at, b.cancelled_at, b.cancelled_by, b.late_cancellation, b.fee,
       b.updated_at, b.series_id, b.reference, b.revision, b.changed_at
FROM booking b
JOIN device d ON d.id = b.device_id
JOIN org_profile o ON o.id = b.organization_id;
