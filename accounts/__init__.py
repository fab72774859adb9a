"""Organizations (the SME customers), users, roles, qualifications, authentication and the audit log."""
