-- The scheduled life-cycle pass: no-shows, automatic check-in from the machine's own state, completion.
-- What the machine did comes from telemetry (booking may not read its tables), through a function the
-- composition root passes in (booking.lifecycle.advance's `activity`).

-- name: due-for-check-in
-- Confirmed bookings past their no-show threshold, with the threshold itself (:no_show_after of the class):
-- the machine's activity within [start, start + threshold] decides. The class rules come from the
-- catalogue in memory (:class_ids / :no_show_after / :no_show_fee_share), falling back to the synced
-- device_class row for a class that has since left devices.yaml. Locked, so a check-in or cancellation
-- happening right now waits and is re-checked.
WITH rules AS (
    SELECT *
    FROM unnest(CAST(:class_ids AS text[]), CAST(:no_show_after AS interval[]),
                CAST(:no_show_fee_share AS numeric[])) AS r (class_id, no_show_after, no_show_fee_share)
)
SELECT b.id, b.device_id, lower(b.during) AS start, upper(b.during) AS "end", b.net,
       coalesce(r.no_show_fee_share, dc.no_show_fee_share) AS no_show_fee_share,
       lower(b.during) + coalesce(r.no_show_after, dc.no_show_after) AS threshold_end
FROM booking b
JOIN device d ON d.id = b.device_id
JOIN device_class dc ON dc.id = d.class_id
LEFT JOIN rules r ON r.class_id = d.class_id
WHERE b.status = 'confirmed' AND lower(b.during) <= :now  -- the partial index booking_due
  AND lower(b.during) + coalesce(r.no_show_after, dc.no_show_after) <= :now
ORDER BY lower(b.during), b.id
FOR NO KEY UPDATE OF b;

-- name: start-booking!
UPDATE booking SET status = 'in_progress', checked_in_at = :checked_in_at WHERE id = :id AND status = 'confirmed';

-- name: mark-no-show!
UPDATE booking SET status = 'no_show', fee = :fee WHERE id = :id AND status = 'confirmed';

-- name: due-for-completion
SELECT b.id, upper(b.during) AS "end"
FROM booking b
WHERE b.status = 'in_progress' AND lower(b.during) < :now AND upper(b.during) <= :now
ORDER BY upper(b.during), b.id
FOR NO KEY UPDATE OF b;

-- name: complete-booking!
UPDATE booking SET status = 'completed', finished_at = :finished_at WHERE id = :id AND status = 'in_progress';

-- name: expire-idempotency-keys$
WITH gone AS (DELETE FROM idempotency_key WHERE created_at < :before RETURNING 1)
SELECT count(*) FROM gone;

-- name: next-occupation$
-- When the device is next taken from :after on, looking no further than :until: the start of its next
-- booking that is not cancelled (other than :booking_id; no-shows keep their slot here) or of its next
-- maintenance window that is not cancelled. One under way at :after counts from :after. Null when nothing
-- is planned. Billing stops a booking's overrun there: what the machine does later belongs to that booking.
SELECT min(greatest(lower(o.during), CAST(:after AS timestamptz)))
FROM (
    SELECT during::tstzrange AS during FROM booking
    WHERE device_id = :device_id AND status <> 'cancelled' AND id IS DISTINCT FROM CAST(:booking_id AS bigint)
      AND during && tstzrange(:after, :until)
    UNION ALL
    SELECT during::tstzrange FROM maintenance_window
    WHERE device_id = :device_id AND cancelled_at IS NULL AND during && tstzrange(:after, :until)
) AS o;
