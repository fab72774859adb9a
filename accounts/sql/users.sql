-- Users and their credentials. User columns come in the order of accounts.users.User.

-- name: principal^
-- Who a token or calendar secret names, if the account and its organization are still active and the token
-- (its jti, when it has one) was not ended by a logout.
SELECT u.id, u.email, u.name, u.role, u.organization_id
FROM app_user u LEFT JOIN organization o ON o.id = u.organization_id
WHERE u.id = :id AND u.active AND coalesce(o.active, true)
  AND NOT EXISTS (SELECT 1 FROM revoked_token r WHERE r.jti = CAST(:jti AS text))
  AND (u.tokens_valid_after IS NULL OR CAST(:issued_at AS timestamptz) IS NULL
       OR CAST(:issued_at AS timestamptz) >= u.tokens_valid_after);

-- name: end-sessions!
-- Tokens carry their issue time in whole seconds: ones issued in the second of the change still count.
UPDATE app_user SET tokens_valid_after = date_trunc('second', CAST(:at AS timestamptz)) WHERE id = :id;

-- name: credentials^
SELECT u.id, u.password_hash
FROM app_user u LEFT JOIN organization o ON o.id = u.organization_id
WHERE lower(u.email) = lower(:email) AND u.active AND coalesce(o.active, true);

-- name: set-password-hash!
UPDATE app_user SET password_hash = :password_hash WHERE id = :id;

-- name: insert-user<!
-- No row back when the email is taken (in any letter case); the caller's transaction stays usable.
INSERT INTO app_user (email, name, role, organization_id, password_hash, created_at)
VALUES (:email, :name, :role, :organization_id, :password_hash, :at)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: user^
SELECT id, email, name, role, organization_id, active, created_at, updated_at FROM app_user WHERE id = :id;

-- name: user-for-update^
SELECT id, email, name, role, organization_id, active, created_at, updated_at FROM app_user WHERE id = :id FOR UPDATE;

-- name: users
SELECT id, email, name, role, organization_id, active, created_at, updated_at
FROM app_user
WHERE CAST(:organization_id AS bigint) IS NULL OR organization_id = :organization_id
ORDER BY id;

-- name: update-user!
UPDATE app_user
SET email = :email, name = :name, role = :role, organization_id = :organization_id, active = :active
WHERE id = :id;

-- name: set-calendar-secret$
UPDATE app_user SET calendar_secret_sha256 = :digest WHERE id = :id RETURNING id;

-- name: user-by-calendar-secret$
SELECT id FROM app_user WHERE calendar_secret_sha256 = :digest;

-- name: search-users
-- The admin pages' list: a text found in the email or name, optionally of one role or organization, newest first.
SELECT id, email, name, role, organization_id, active, created_at, updated_at
FROM app_user
WHERE (CAST(:q AS text) IS NULL OR strpos(lower(email || ' ' || name), lower(:q)) > 0)
  AND (CAST(:role AS text) IS NULL OR role = :role)
  AND (CAST(:organization_id AS bigint) IS NULL OR organization_id = :organization_id)
ORDER BY id DESC
LIMIT :limit;

-- name: emails-taken
-- Which of these emails (lower case) an account has already.
SELECT lower(email) FROM app_user WHERE lower(email) = ANY(CAST(:emails AS text[]));
