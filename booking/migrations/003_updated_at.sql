-- When each booking, maintenance window and closed day last changed, for `updated_since` on their lists.
SELECT track_updates('booking');
SELECT track_updates('maintenance_window');
SELECT track_updates('closed_day');
-- An ERP syncing bookings asks for the recent changes of a large table.
CREATE INDEX booking_updated_at_idx ON booking (updated_at);

-- The detail the API lists bookings from carries the sync column (appended: the view keeps its columns).
CREATE OR REPLACE VIEW booking_detail AS
SELECT b.id, b.device_id, d.class_id, d.name AS device_name, b.organization_id, o.name AS organization_name,
       b.user_id, b.created_by, lower(b.during) AS start, upper(b.during) AS "end", b.status, b.purpose,
       b.hourly_rate, b.gross, b.subsidy_program, b.subsidy_share, b.subsidy, b.net, b.override_reason,
       b.created_at, b.checked_in_at, b.finished_at, b.cancelled_at, b.cancelled_by, b.late_cancellation, b.fee,
       b.updated_at
FROM booking b
JOIN device d ON d.id = b.device_id
JOIN org_profile o ON o.id = b.organization_id;
