-- Accounts: the SME customers, the people who log in, what they are qualified to book, and who changed what.

CREATE TABLE organization (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text        NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    -- Unified social credit code (GB 32100-2015); the check character is verified in Python at the edge.
    uscc             text        NOT NULL UNIQUE CHECK (uscc ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'),
    contact_name     text        NOT NULL DEFAULT '',
    contact_phone    text        NOT NULL DEFAULT '',
    contact_email    text        NOT NULL DEFAULT '',
    -- Subsidy program ids from the center's configuration (booking owns the programs).
    subsidy_programs text[]      NOT NULL DEFAULT '{}',
    active           boolean     NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE app_user (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email           text        NOT NULL,
    name            text        NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    role            text        NOT NULL CHECK (role IN ('customer', 'technician', 'finance', 'admin')),
    -- Customers belong to an SME; staff belong to the center itself and have none.
    organization_id bigint      REFERENCES organization (id),
    password_hash   text        NOT NULL,
    active          boolean     NOT NULL DEFAULT true,
    -- sha256 of the secret in the user's calendar feed URL; rotating it invalidates the old URL.
    calendar_secret_sha256 bytea UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT customer_has_organization CHECK ((role = 'customer') = (organization_id IS NOT NULL))
);
CREATE UNIQUE INDEX app_user_email ON app_user (lower(email));
CREATE INDEX app_user_organization ON app_user (organization_id);

-- A user may book a device class while qualified for it; device classes are booking's, so the class is
-- an id validated at the edge rather than a foreign key.
CREATE TABLE qualification (
    user_id      bigint      NOT NULL REFERENCES app_user (id),
    device_class text        NOT NULL,
    expires_on   date        NOT NULL,
    granted_by   bigint      REFERENCES app_user (id),
    granted_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, device_class)
);

-- Failed logins, per account and per client address, for rate limiting across processes.
CREATE TABLE login_failure (
    scope   text        NOT NULL CHECK (scope IN ('account', 'address')),
    subject text        NOT NULL,
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_failure_recent ON login_failure (scope, subject, at DESC);

-- Who changed what: bookings, rules, rates, qualifications, organizations, users.
CREATE TABLE audit_log (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor_id  bigint      REFERENCES app_user (id),
    -- A person's email, or a system actor such as 'devices.yaml' or 'job:no-shows'.
    actor     text        NOT NULL,
    action    text        NOT NULL,
    entity    text        NOT NULL,
    entity_id text        NOT NULL,
    before    jsonb,
    after     jsonb,
    reason    text
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id, at DESC);
CREATE INDEX audit_log_at ON audit_log (at DESC);
