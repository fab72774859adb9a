-- name: publish-event<!
INSERT INTO outbox_event (kind, key, payload, created_at)
VALUES (:kind, :key, :payload, :at)
ON CONFLICT (key) DO NOTHING
RETURNING id;

-- name: claim-events
-- The oldest waiting events, locked for this dispatcher; another process skips them rather than waiting.
SELECT id, kind, payload, created_at
FROM outbox_event
WHERE dispatched_at IS NULL
ORDER BY id
LIMIT :limit
FOR UPDATE SKIP LOCKED;

-- name: mark-dispatched!
UPDATE outbox_event SET dispatched_at = :at WHERE id = :id;

-- name: waiting-events$
SELECT count(*) FROM outbox_event WHERE dispatched_at IS NULL;
