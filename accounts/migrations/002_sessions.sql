-- Tokens ended before their expiry (a browser's logout): refused until they would have expired anyway,
-- then forgotten by the login-expiry job.
CREATE TABLE revoked_token (
    jti        text        PRIMARY KEY CHECK (length(jti) BETWEEN 16 AND 64),
    expires_at timestamptz NOT NULL
);
CREATE INDEX revoked_token_expiry ON revoked_token (expires_at);
