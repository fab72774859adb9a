-- API keys for systems (accounts/api_keys.py).

-- name: next-api-key-id$
-- Taken before the key's service account is made, whose email names the key.
SELECT nextval(pg_get_serial_sequence('api_key', 'id'));

-- name: insert-api-key!
INSERT INTO api_key (id, user_id, name, role, organization_id, digest, created_by, created_at, expires_at)
VALUES (:id, :user_id, :name, :role, :organization_id, :digest, :created_by, :at, :expires_at);

-- name: api-keys
SELECT id, user_id, name, role, organization_id, created_by, created_at, expires_at, revoked_at, last_used_at,
       updated_at
FROM api_key
WHERE CAST(:id AS bigint) IS NULL OR id = :id
ORDER BY id DESC;

-- name: revoke-api-key<!
-- Once: a revoked key keeps its first revocation time.
UPDATE api_key SET revoked_at = :at WHERE id = :id AND revoked_at IS NULL RETURNING id;

-- name: api-key-credentials^
-- What a presented key is checked against; its service account and organization must still be active.
SELECT k.digest, k.user_id, u.email, k.name, k.role, k.organization_id, k.expires_at, k.revoked_at,
       k.last_used_at
FROM api_key k
JOIN app_user u ON u.id = k.user_id
LEFT JOIN organization o ON o.id = k.organization_id
WHERE k.id = :id AND u.active AND coalesce(o.active, true);

-- name: touch-api-key!
-- At most once a minute per key, whatever the number of processes: the condition is checked in the update.
UPDATE api_key SET last_used_at = :at
WHERE id = :id AND (last_used_at IS NULL OR last_used_at <= CAST(:at AS timestamptz) - interval '1 minute');

-- name: count-api-key-request$
-- One more request in the key's current minute; the count so far, this one included.
INSERT INTO api_key_window (key_id, window_start, requests) VALUES (:id, :window_start, 1)
ON CONFLICT (key_id, window_start) DO UPDATE SET requests = api_key_window.requests + 1
RETURNING requests;

-- name: expire-api-key-windows!
DELETE FROM api_key_window WHERE window_start < :before;
