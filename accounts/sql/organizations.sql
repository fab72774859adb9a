-- Organizations: the SME customers. Columns come in the order of accounts.organizations.Organization.

-- name: insert-organization<!
-- No row back when the credit code is taken; the caller's transaction stays usable.
INSERT INTO organization (name, uscc, contact_name, contact_phone, contact_email, subsidy_programs,
                          reference_required, taxpayer_type, invoice_address, invoice_phone, bank_name, bank_account,
                          created_at)
VALUES (:name, :uscc, :contact_name, :contact_phone, :contact_email, :subsidy_programs, :reference_required,
        :taxpayer_type, :invoice_address, :invoice_phone, :bank_name, :bank_account, :at)
ON CONFLICT (uscc) DO NOTHING
RETURNING id;

-- name: organization^
SELECT id, name, uscc, contact_name, contact_phone, contact_email, subsidy_programs, active, created_at, updated_at,
       reference_required, taxpayer_type, invoice_address, invoice_phone, bank_name, bank_account
FROM organization WHERE id = :id;

-- name: organization-for-update^
SELECT id, name, uscc, contact_name, contact_phone, contact_email, subsidy_programs, active, created_at, updated_at,
       reference_required, taxpayer_type, invoice_address, invoice_phone, bank_name, bank_account
FROM organization WHERE id = :id FOR UPDATE;

-- name: organizations
SELECT id, name, uscc, contact_name, contact_phone, contact_email, subsidy_programs, active, created_at, updated_at,
       reference_required, taxpayer_type, invoice_address, invoice_phone, bank_name, bank_account
FROM organization
WHERE CAST(:id AS bigint) IS NULL OR id = :id
ORDER BY name, id;

-- name: update-organization!
UPDATE organization
SET name = :name, uscc = :uscc, contact_name = :contact_name, contact_phone = :contact_phone,
    contact_email = :contact_email, subsidy_programs = :subsidy_programs, active = :active,
    reference_required = :reference_required, taxpayer_type = :taxpayer_type, invoice_address = :invoice_address,
    invoice_phone = :invoice_phone, bank_name = :bank_name, bank_account = :bank_account
WHERE id = :id;

-- name: search-organizations
-- The admin pages' list: a text found in the name, credit code or contact, by name.
SELECT id, name, uscc, contact_name, contact_phone, contact_email, subsidy_programs, active, created_at, updated_at,
       reference_required, taxpayer_type, invoice_address, invoice_phone, bank_name, bank_account
FROM organization
WHERE CAST(:q AS text) IS NULL
   OR strpos(lower(name || ' ' || uscc || ' ' || contact_name || ' ' || contact_email || ' ' || contact_phone),
             lower(:q)) > 0
ORDER BY name, id
LIMIT :limit;

-- name: organization-by-code^
-- An organization named by its credit code, as a CSV import writes it.
SELECT id, name, active FROM organization WHERE uscc = upper(:uscc);
