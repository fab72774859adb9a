-- Maintenance windows: a technician blocks a device; live bookings in the way are refused or cancelled.

-- name: lock-device-for-maintenance$
-- Exclusive: bookings take this lock shared (lock-for-booking), so none can slip in while this decides.
SELECT pg_advisory_xact_lock(hashtext('fabhub.device'), hashtext(:device_id));

-- name: maintenance-device^
SELECT id, retired_at FROM device WHERE id = :device_id;

-- name: insert-maintenance$
INSERT INTO maintenance_window (device_id, during, reason, created_by, created_at)
VALUES (:device_id, tstzrange(:start, :end), :reason, :created_by, :now)
RETURNING id;

-- name: overlapping-maintenance
SELECT m.id, lower(m.during) AS start, upper(m.during) AS "end", m.reason
FROM maintenance_window m
WHERE m.device_id = :device_id AND m.cancelled_at IS NULL AND m.during && tstzrange(:start, :end)
ORDER BY lower(m.during), m.id;

-- name: live-bookings-in-window
-- Locked: a customer cancelling or checking in at this moment waits, and is re-checked after.
SELECT b.id, b.organization_id, o.name AS organization_name, lower(b.during) AS start, upper(b.during) AS "end",
       b.status
FROM booking b
JOIN org_profile o ON o.id = b.organization_id
WHERE b.device_id = :device_id AND b.status IN ('confirmed', 'in_progress', 'completed')
  AND b.during && tstzrange(:start, :end)
ORDER BY lower(b.during), b.id
FOR NO KEY UPDATE OF b;

-- name: cancel-booking-for-maintenance!
UPDATE booking
SET status = 'cancelled', cancelled_at = :now, cancelled_by = :by, late_cancellation = false, fee = 0
WHERE id = :id AND status = 'confirmed';

-- name: maintenance-row^
SELECT m.id, m.device_id, d.name AS device_name, lower(m.during) AS start, upper(m.during) AS "end", m.reason,
       m.created_by, m.created_at, m.cancelled_at, m.updated_at
FROM maintenance_window m JOIN device d ON d.id = m.device_id
WHERE m.id = :id;

-- name: lock-maintenance^
SELECT m.id, m.device_id, lower(m.during) AS start, upper(m.during) AS "end", m.cancelled_at
FROM maintenance_window m
WHERE m.id = :id
FOR NO KEY UPDATE;

-- name: cancel-maintenance!
UPDATE maintenance_window SET cancelled_at = :now WHERE id = :id;

-- name: end-maintenance-now!
-- A window already under way ends now rather than vanishing: the hours it did block stay on record.
UPDATE maintenance_window SET during = tstzrange(lower(during), :now) WHERE id = :id;

-- name: maintenance-rows
-- Cancelled windows only on request: a client syncing changes must see a cancellation.
SELECT m.id, m.device_id, d.name AS device_name, lower(m.during) AS start, upper(m.during) AS "end", m.reason,
       m.created_by, m.created_at, m.cancelled_at, m.updated_at
FROM maintenance_window m JOIN device d ON d.id = m.device_id
WHERE (m.cancelled_at IS NULL OR :with_cancelled) AND m.during && tstzrange(:start, :end)
  AND (CAST(:device_id AS text) IS NULL OR m.device_id = :device_id)
ORDER BY lower(m.during), m.device_id, m.id
LIMIT :limit;
