-- Login rate limiting, counted in the database so every FabHub process sees the same failures.

-- name: login-failures^
-- Failures inside the window for the account and for the address, and when the oldest of each ages out.
SELECT
    count(*) FILTER (WHERE scope = 'account' AND subject = :account) AS account_failures,
    min(at) FILTER (WHERE scope = 'account' AND subject = :account) AS account_oldest,
    count(*) FILTER (WHERE scope = 'address' AND subject = :address) AS address_failures,
    min(at) FILTER (WHERE scope = 'address' AND subject = :address) AS address_oldest
FROM login_failure
WHERE ((scope = 'account' AND subject = :account) OR (scope = 'address' AND subject = :address))
  AND at > :since;

-- name: record-login-failure!
WITH expired AS (
    DELETE FROM login_failure
    WHERE ((scope = 'account' AND subject = :account) OR (scope = 'address' AND subject = :address))
      AND at <= :since
)
INSERT INTO login_failure (scope, subject, at) VALUES ('account', :account, :now), ('address', :address, :now);

-- name: lock-login$
SELECT count(*) FROM (
    SELECT pg_advisory_xact_lock(hashtext('fabhub.login-account'), hashtext(:account))
    UNION ALL
    SELECT pg_advisory_xact_lock(hashtext('fabhub.login-address'), hashtext(:address))
) AS locks;

-- name: forget-login-attempt!
-- A success: the account starts afresh, and this attempt does not count against the address.
WITH account AS (DELETE FROM login_failure WHERE scope = 'account' AND subject = :account)
DELETE FROM login_failure
WHERE ctid = (SELECT ctid FROM login_failure WHERE scope = 'address' AND subject = :address AND at = :now LIMIT 1);

-- name: expire-login-failures!
DELETE FROM login_failure WHERE at <= :before;

-- name: revoke-token!
INSERT INTO revoked_token (jti, expires_at) VALUES (:jti, :expires_at) ON CONFLICT DO NOTHING;

-- name: expire-revoked-tokens!
DELETE FROM revoked_token WHERE expires_at <= :now;
