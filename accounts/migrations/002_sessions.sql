-- Tokens ended before their expiry: one by a logout (refused until it would have expired anyway, then
-- forgotten by the login-expiry job), or all of an account's issued before a password change.
CREATE TABLE revoked_token (
    jti        text        PRIMARY KEY CHECK (length(jti) BETWEEN 16 AND 64),
    expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_token_expiry ON revoked_token (expires_at);

ALTER TABLE app_user ADD COLUMN tokens_valid_after timestamptz;
