-- The calendar feed: the bookings one person may see, from 90 days back on.

-- name: calendar-bookings
SELECT b.id, d.name AS device_name, o.name AS organization_name, b.purpose, b.status,
       lower(b.during) AS start, upper(b.during) AS "end", b.gross, b.subsidy, b.subsidy_program, b.net, b.fee,
       b.created_at, greatest(b.created_at, b.checked_in_at, b.finished_at, b.cancelled_at) AS modified_at
FROM booking b
JOIN device d ON d.id = b.device_id
JOIN organization o ON o.id = b.organization_id
WHERE upper(b.during) > :since
  AND (CAST(:organization_id AS bigint) IS NULL OR b.organization_id = :organization_id)
ORDER BY lower(b.during), b.id
LIMIT :limit;
