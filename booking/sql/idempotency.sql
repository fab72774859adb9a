-- Idempotency keys of POST requests.

-- name: stored-response^
SELECT request_sha256, status, response FROM idempotency_key
WHERE user_id = :user_id AND key = :key AND created_at > :since AND status IS NOT NULL;

-- name: drop-expired-key!
DELETE FROM idempotency_key WHERE user_id = :user_id AND key = :key AND created_at <= :since;

-- name: claim-key!
-- The first statement of the request's transaction: a concurrent request with the same key waits here
-- until this one commits (then it replays the answer) or rolls back (then it runs itself).
INSERT INTO idempotency_key (user_id, key, request_sha256, created_at) VALUES (:user_id, :key, :sha, :now);

-- name: store-response!
UPDATE idempotency_key SET status = :status, response = :response WHERE user_id = :user_id AND key = :key;
