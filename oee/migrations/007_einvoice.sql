-- The tax platform's number (数电发票号码, 20 digits) recorded back on an issued invoice or credit note. Its own
-- table: an issued invoice never changes (invoice_is_final), and this number arrives after issuing, once the
-- tax bureau's platform has issued the 数电发票. One number per document, and a number names one document.
CREATE TABLE invoice_tax_number (
    invoice_id  bigint      PRIMARY KEY REFERENCES invoice (id),
    number      text        NOT NULL UNIQUE CHECK (number ~ '^[0-9]{20}$'),
    recorded_at timestamptz NOT NULL,
    recorded_by bigint      REFERENCES app_user (id)
);
