-- Organizations that need a project or purchase-order reference on every booking (their finance matches
-- our invoices to their orders by it); published, so booking can enforce it.
ALTER TABLE organization ADD COLUMN reference_required boolean NOT NULL DEFAULT false;

CREATE OR REPLACE VIEW org_profile AS
SELECT id, name, uscc, contact_name, contact_phone, contact_email, subsidy_programs, active, created_at,
       reference_required
FROM organization;
