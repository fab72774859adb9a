-- accounts' published interface: the only accounts relations another package's SQL may read (booking and oee;
-- DESIGN.md's package table says who may import accounts). Plain views over one table each, so the planner
-- inlines them. Credentials (password hashes, calendar secrets, token validity) are never published.
-- published: org_profile, user_profile, qualification_grant

CREATE VIEW org_profile AS
SELECT id, name, uscc, contact_name, contact_phone, contact_email, subsidy_programs, active, created_at
FROM organization;

CREATE VIEW user_profile AS
SELECT id, email, name, role, organization_id, active, created_at
FROM app_user;

CREATE VIEW qualification_grant AS
SELECT user_id, device_class, expires_on, granted_by, granted_at
FROM qualification;
