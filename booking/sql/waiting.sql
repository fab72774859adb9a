-- name: insert-waiting$
INSERT INTO waiting_entry (organization_id, user_id, class_id, device_id, during, purpose, reference, auto_book,
                           created_at)
VALUES (:organization_id, :user_id, :class_id, :device_id, tstzrange(:start, :end), :purpose, :reference,
        :auto_book, :now)
RETURNING id;

-- name: waiting-rows
SELECT w.id, w.organization_id, w.user_id, w.class_id, w.device_id, lower(w.during) AS start,
       upper(w.during) AS "end", w.purpose, w.reference, w.auto_book, w.status, w.offered_device,
       w.offer_expires_at, w.booking_id, w.created_at, w.updated_at
FROM waiting_entry w
WHERE (CAST(:organization_id AS bigint) IS NULL OR w.organization_id = :organization_id)
  AND (CAST(:id AS bigint) IS NULL OR w.id = :id)
ORDER BY w.created_at, w.id;

-- name: lock-waiting^
SELECT id, organization_id, user_id, status, class_id, device_id, lower(during) AS start, upper(during) AS "end",
       purpose, reference, offered_device, offer_expires_at
FROM waiting_entry WHERE id = :id FOR UPDATE;

-- name: end-stale-waiting!
-- Entries whose span has begun can no longer be served; offers past their window lapse.
UPDATE waiting_entry
SET status = CASE WHEN status = 'offered' AND offer_expires_at <= :now AND lower(during) > :now THEN 'lapsed'
                  ELSE 'expired' END
WHERE status IN ('waiting', 'offered')
  AND (lower(during) <= :now OR (status = 'offered' AND offer_expires_at <= :now));

-- name: open-waiting
-- The entries to serve, first come first: each with whether an open offer already holds its span (a slot is
-- offered to one waiter at a time).
SELECT w.id, w.organization_id, w.user_id, w.class_id, w.device_id, lower(w.during) AS start,
       upper(w.during) AS "end", w.purpose, w.reference, w.auto_book
FROM waiting_entry w
WHERE w.status = 'waiting'
  AND NOT EXISTS (
      SELECT 1 FROM waiting_entry o
      WHERE o.status = 'offered' AND o.class_id = w.class_id AND o.during && w.during
        AND (w.device_id IS NULL OR o.offered_device = w.device_id))
ORDER BY w.created_at, w.id
FOR UPDATE OF w SKIP LOCKED;

-- name: offer-waiting!
UPDATE waiting_entry SET status = 'offered', offered_device = :device_id, offer_expires_at = :expires
WHERE id = :id;

-- name: settle-waiting!
UPDATE waiting_entry SET status = :status, booking_id = :booking_id WHERE id = :id;
