-- Users invited by email: an admin creates the account without a password (NULL: no password verifies
-- against it) and FabHub emails a link where the person chooses one. The link's token is kept as its SHA-256
-- only; a user has at most one open invitation (a new one replaces it), it holds 7 days and is used once
-- (the row goes when a password is set, by the link or otherwise). `language` is the email's.
ALTER TABLE app_user ALTER COLUMN password_hash DROP NOT NULL;

CREATE TABLE invitation (
    user_id    bigint      PRIMARY KEY REFERENCES app_user (id),
    digest     text        NOT NULL UNIQUE CHECK (digest ~ '^[0-9a-f]{64}$'),
    expires_at timestamptz NOT NULL,
    language   text        NOT NULL CHECK (language IN ('zh-CN', 'en')),
    invited_by bigint      REFERENCES app_user (id),
    created_at timestamptz NOT NULL
);
