-- Payments against issued invoices, kept apart from the invoice (which never changes once issued). A payment
-- is reversed, never deleted, so what was recorded stays readable. Bank statement rows are kept with their
-- match result; row_hash makes importing the same file twice record nothing twice.
CREATE TABLE payment (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id      bigint        NOT NULL REFERENCES invoice (id),
    amount          numeric(12,2) NOT NULL CHECK (amount > 0),
    paid_on         date          NOT NULL,
    method          text          NOT NULL CHECK (method IN ('bank_transfer', 'cash', 'wechat', 'alipay', 'other')),
    reference       text          NOT NULL DEFAULT '',
    recorded_by     bigint        NOT NULL REFERENCES app_user (id),
    recorded_at     timestamptz   NOT NULL,
    reversed_at     timestamptz,
    reversed_by     bigint        REFERENCES app_user (id),
    reversal_reason text,
    CHECK ((reversed_at IS NULL) = (reversed_by IS NULL) AND (reversed_at IS NULL) = (reversal_reason IS NULL))
);
CREATE INDEX payment_of_invoice ON payment (invoice_id);
SELECT track_updates('payment');

CREATE TABLE bank_statement (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    filename    text        NOT NULL,
    imported_by bigint      NOT NULL REFERENCES app_user (id),
    imported_at timestamptz NOT NULL
);

CREATE TABLE bank_row (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    statement_id bigint        NOT NULL REFERENCES bank_statement (id),
    line         integer       NOT NULL,
    booked_on    date          NOT NULL,
    amount       numeric(12,2) NOT NULL,
    reference    text          NOT NULL,
    payer        text          NOT NULL,
    row_hash     text          NOT NULL UNIQUE,
    status       text          NOT NULL CHECK (status IN ('matched', 'unmatched', 'assigned', 'dismissed')),
    payment_id   bigint        REFERENCES payment (id),
    reason       text,
    reviewed_by  bigint        REFERENCES app_user (id),
    reviewed_at  timestamptz,
    CHECK ((status IN ('matched', 'assigned')) = (payment_id IS NOT NULL))
);
CREATE INDEX bank_row_of_statement ON bank_row (statement_id, line);
