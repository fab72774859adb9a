-- Invitations: the link an invited user sets a password with. Tokens travel as their SHA-256 (hex).

-- name: put-invitation!
-- A new invitation replaces the user's open one: the old link stops working.
INSERT INTO invitation (user_id, digest, expires_at, language, invited_by, created_at)
VALUES (:user_id, :digest, :expires_at, :language, :invited_by, :now)
ON CONFLICT (user_id) DO UPDATE
SET digest = EXCLUDED.digest, expires_at = EXCLUDED.expires_at, language = EXCLUDED.language,
    invited_by = EXCLUDED.invited_by, created_at = EXCLUDED.created_at;

-- name: invitation-of^
-- The user's last invitation (expired or not; none once a password is set), whether the user has a password,
-- and is active. The user is locked: an invitation and a new password do not cross.
SELECT u.password_hash IS NOT NULL AS has_password, u.active, i.expires_at, i.language
FROM app_user u LEFT JOIN invitation i ON i.user_id = u.id
WHERE u.id = :id
FOR UPDATE OF u;

-- name: invited-user$
-- Whose invitation the token is, while it holds (locked: it may be about to be used).
SELECT user_id FROM invitation WHERE digest = :digest AND expires_at > :now FOR UPDATE;

-- name: drop-invitation!
DELETE FROM invitation WHERE user_id = :user_id;
