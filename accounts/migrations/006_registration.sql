-- Companies registering themselves. A registration holds what the company typed, its business licence (a
-- file under FABHUB_DATA_DIR named by its SHA-256) and the first user's password hash; the organization and
-- the user exist only once an admin approves, so nobody books before. The confirmation token is kept as its
-- SHA-256 only. The client address and email count against the per-address and per-email limits.
CREATE TABLE registration (
    id                 bigserial PRIMARY KEY,
    organization_name  text NOT NULL CHECK (length(organization_name) BETWEEN 1 AND 200),
    uscc               text NOT NULL CHECK (length(uscc) = 18),
    contact_name       text NOT NULL CHECK (length(contact_name) BETWEEN 1 AND 200),
    contact_phone      text NOT NULL CHECK (length(contact_phone) BETWEEN 1 AND 50),
    contact_email      text NOT NULL CHECK (length(contact_email) BETWEEN 3 AND 254),
    language           text NOT NULL DEFAULT 'zh-CN' CHECK (language IN ('zh-CN', 'en')),
    password_hash      text NOT NULL,
    licence_sha256     text NOT NULL CHECK (licence_sha256 ~ '^[0-9a-f]{64}$'),
    licence_type       text NOT NULL CHECK (licence_type IN ('application/pdf', 'image/jpeg', 'image/png')),
    licence_size       integer NOT NULL CHECK (licence_size > 0),
    status             text NOT NULL DEFAULT 'unconfirmed'
                       CHECK (status IN ('unconfirmed', 'pending', 'approved', 'refused')),
    confirm_digest     text UNIQUE,
    confirm_expires_at timestamptz NOT NULL,
    client_address     text NOT NULL,
    created_at         timestamptz NOT NULL,
    confirmed_at       timestamptz,
    decided_at         timestamptz,
    decided_by         bigint REFERENCES app_user (id),
    reason             text CHECK (length(reason) <= 500),
    organization_id    bigint REFERENCES organization (id),
    user_id            bigint REFERENCES app_user (id)
);
CREATE INDEX registration_address_idx ON registration (client_address, created_at);
CREATE INDEX registration_email_idx ON registration (contact_email, created_at);
CREATE INDEX registration_open_idx ON registration (uscc) WHERE status IN ('unconfirmed', 'pending');
SELECT track_updates('registration');
