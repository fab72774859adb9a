-- The calendar feed: the bookings one person may see, from 90 days back on.

-- name: calendar-bookings
SELECT id, device_name, organization_name, purpose, status, start, "end", gross, subsidy, subsidy_program, net,
       fee, created_at, revision, greatest(created_at, changed_at, checked_in_at, finished_at, cancelled_at) AS modified_at
FROM booking_detail
WHERE "end" > :since
  AND (CAST(:organization_id AS bigint) IS NULL OR organization_id = :organization_id)
-- Newest first, so a feed at its limit drops the oldest past bookings, never the coming ones.
ORDER BY start DESC, id DESC
LIMIT :limit;
