-- Qualifications: which device classes a user may book, until when.

-- name: qualified-until$
-- The expiry date of a user's qualification for a device class, or null.
SELECT expires_on FROM qualification WHERE user_id = :user_id AND device_class = :device_class;

-- name: qualification-for-update^
SELECT device_class, expires_on, granted_by, granted_at
FROM qualification WHERE user_id = :user_id AND device_class = :device_class FOR UPDATE;

-- name: upsert-qualification!
INSERT INTO qualification (user_id, device_class, expires_on, granted_by, granted_at)
VALUES (:user_id, :device_class, :expires_on, :granted_by, :granted_at)
ON CONFLICT (user_id, device_class) DO UPDATE
SET expires_on = excluded.expires_on, granted_by = excluded.granted_by, granted_at = excluded.granted_at;

-- name: delete-qualification<!
DELETE FROM qualification WHERE user_id = :user_id AND device_class = :device_class
RETURNING device_class, expires_on, granted_by, granted_at;

-- name: qualifications
SELECT device_class, expires_on, granted_by, granted_at
FROM qualification WHERE user_id = :user_id ORDER BY device_class;
