-- Buyer tax data, as printed on the organization's tax invoices: taxpayer type (一般纳税人 'general' or
-- 小规模纳税人 'small_scale'; '' not given yet), address and phone, bank and account. Empty until an admin or the
-- API fills them in; checked at the edge (accounts.tax_data), bounded here. Published with org_profile, so oee
-- prints them on the invoice PDF and the e-invoice sheet.
ALTER TABLE organization
    ADD COLUMN taxpayer_type   text NOT NULL DEFAULT '' CHECK (taxpayer_type IN ('', 'general', 'small_scale')),
    ADD COLUMN invoice_address text NOT NULL DEFAULT '' CHECK (length(invoice_address) <= 200),
    ADD COLUMN invoice_phone   text NOT NULL DEFAULT '' CHECK (invoice_phone ~ '^[0-9 +-]{0,30}$'),
    ADD COLUMN bank_name       text NOT NULL DEFAULT '' CHECK (length(bank_name) <= 100),
    ADD COLUMN bank_account    text NOT NULL DEFAULT '' CHECK (bank_account ~ '^([0-9]{8,32})?$');

CREATE OR REPLACE VIEW org_profile AS
SELECT id, name, uscc, contact_name, contact_phone, contact_email, subsidy_programs, active, created_at,
       reference_required, taxpayer_type, invoice_address, invoice_phone, bank_name, bank_account
FROM organization;
