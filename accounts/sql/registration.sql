-- Self-registration of companies. Columns of registration-rows come in the order of
-- accounts.registration.Registration.

-- name: registrations-from-address$
-- For the limits: how many registrations came from this address, or for this email, since :since.
SELECT count(*) FROM registration WHERE client_address = :address AND created_at > :since;

-- name: registrations-from-email$
SELECT count(*) FROM registration WHERE contact_email = :email AND created_at > :since;

-- name: uscc-in-use$
-- An organization with the code, or a registration for it still open (unconfirmed and not expired, or pending).
SELECT EXISTS (SELECT 1 FROM organization WHERE uscc = :uscc)
    OR EXISTS (SELECT 1 FROM registration WHERE uscc = :uscc
               AND (status = 'pending' OR (status = 'unconfirmed' AND confirm_expires_at > :now)));

-- name: email-in-use$
SELECT EXISTS (SELECT 1 FROM app_user WHERE lower(email) = lower(:email));

-- name: insert-registration$
INSERT INTO registration (organization_name, uscc, contact_name, contact_phone, contact_email, language,
                          password_hash, licence_sha256, licence_type, licence_size, confirm_digest,
                          confirm_expires_at, client_address, created_at)
VALUES (:organization_name, :uscc, :contact_name, :contact_phone, :contact_email, :language, :password_hash,
        :licence_sha256, :licence_type, :licence_size, :confirm_digest, :confirm_expires_at, :client_address, :now)
RETURNING id;

-- name: confirm-registration^
UPDATE registration SET status = 'pending', confirmed_at = :now, confirm_digest = NULL
WHERE confirm_digest = :digest AND status = 'unconfirmed' AND confirm_expires_at > :now
RETURNING id;

-- name: registration-rows
SELECT id, organization_name, uscc, contact_name, contact_phone, contact_email, language, licence_sha256,
       licence_type, licence_size, status, created_at, confirmed_at, decided_at, decided_by, reason,
       organization_id, user_id, updated_at
FROM registration
WHERE (CAST(:status AS text) IS NULL OR status = :status) AND (CAST(:id AS bigint) IS NULL OR id = :id)
ORDER BY created_at DESC, id DESC;

-- name: lock-registration^
SELECT id, status, password_hash FROM registration WHERE id = :id FOR UPDATE;

-- name: decide-registration!
UPDATE registration
SET status = :status, decided_at = :now, decided_by = :by, reason = :reason, organization_id = :organization_id,
    user_id = :user_id, password_hash = ''
WHERE id = :id;
