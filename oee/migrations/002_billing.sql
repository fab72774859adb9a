-- Billing: measured usage per booking, invoices with gapless yearly numbers, credit notes, and the subsidy
-- ledger whose annual caps can never be exceeded. Money is numeric(12,2) CNY, amounts tax-inclusive.

-- What a booking used, measured by the machine.
CREATE TABLE usage_record (
    booking_id      bigint PRIMARY KEY REFERENCES booking (id),
    booked_s        double precision NOT NULL,
    running_s       double precision NOT NULL,
    setup_s         double precision NOT NULL,
    overrun_s       double precision NOT NULL,  -- running on past the booked end
    offline_s       double precision NOT NULL,
    parts_total     double precision NOT NULL,
    parts_good      double precision,
    energy_kwh      double precision,
    computed_at     timestamptz NOT NULL
);

CREATE TABLE invoice (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            text          NOT NULL DEFAULT 'invoice' CHECK (kind IN ('invoice', 'credit_note')),
    organization_id bigint        NOT NULL REFERENCES organization (id),
    month           date          NOT NULL CHECK (extract(day FROM month) = 1),
    status          text          NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'issued')),
    number          text          UNIQUE,
    vat_rate        numeric(5,4)  NOT NULL,
    total           numeric(12,2) NOT NULL DEFAULT 0,  -- tax-inclusive
    vat             numeric(12,2) NOT NULL DEFAULT 0,
    credits         bigint        REFERENCES invoice (id),  -- a credit note: the invoice it cancels
    credited_by     bigint        REFERENCES invoice (id),  -- an invoice: its credit note
    reason          text,
    created_at      timestamptz   NOT NULL,
    issued_at       timestamptz,
    issued_by       bigint        REFERENCES app_user (id),
    CHECK ((status = 'issued') = (number IS NOT NULL AND issued_at IS NOT NULL)),
    CHECK ((kind = 'credit_note') = (credits IS NOT NULL))
);
-- One live invoice per customer and month: a new one only after a credit note cancelled the old.
CREATE UNIQUE INDEX invoice_one_per_month ON invoice (organization_id, month)
    WHERE kind = 'invoice' AND credited_by IS NULL;

CREATE TABLE invoice_line (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id      bigint        NOT NULL REFERENCES invoice (id) ON DELETE CASCADE,
    position        integer       NOT NULL,
    booking_id      bigint        REFERENCES booking (id),
    kind            text          NOT NULL
        CHECK (kind IN ('usage', 'subsidy', 'late_cancellation', 'no_show', 'credit')),
    description     text          NOT NULL,
    quantity        numeric(12,4) NOT NULL,
    unit            text          NOT NULL,
    unit_price      numeric(12,2) NOT NULL,
    amount          numeric(12,2) NOT NULL,  -- tax-inclusive; negative for subsidies and credits
    subsidy_program text          REFERENCES subsidy_program (id),
    UNIQUE (invoice_id, position)
);
CREATE INDEX invoice_line_booking ON invoice_line (booking_id);

-- The monthly draft runs done by the scheduled job, so it drafts each month once (finance may redo any).
CREATE TABLE invoice_run (
    month       date        PRIMARY KEY,
    at          timestamptz NOT NULL,
    invoices    integer     NOT NULL
);

-- Gapless numbers: the counter row is incremented in the issuing transaction, so a rolled-back issue
-- rolls its number back too.
CREATE TABLE invoice_number (
    year integer PRIMARY KEY,
    last integer NOT NULL
);

-- Subsidy granted, per customer, program and calendar year. A row is written with its invoice line and
-- removed with it (a replaced draft); the cap row is locked while entries are added, so two invoice runs
-- can never both take the last of a cap.
CREATE TABLE subsidy_cap (
    organization_id bigint        NOT NULL REFERENCES organization (id),
    program_id      text          NOT NULL REFERENCES subsidy_program (id),
    year            integer       NOT NULL,
    PRIMARY KEY (organization_id, program_id, year)
);
CREATE TABLE subsidy_ledger (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id bigint        NOT NULL,
    program_id      text          NOT NULL,
    year            integer       NOT NULL,
    invoice_line_id bigint        NOT NULL UNIQUE REFERENCES invoice_line (id) ON DELETE CASCADE,
    booking_id      bigint        REFERENCES booking (id),
    amount          numeric(12,2) NOT NULL CHECK (amount <> 0),  -- a credit note gives subsidy back
    at              timestamptz   NOT NULL,
    FOREIGN KEY (organization_id, program_id, year) REFERENCES subsidy_cap
);

-- An issued invoice never changes: only the link to the credit note that cancels it may be set, once.
CREATE FUNCTION invoice_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status = 'issued' THEN
            RAISE EXCEPTION 'invoice % is issued and cannot be deleted', OLD.number USING ERRCODE = 'check_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status = 'issued' AND (
        (to_jsonb(NEW) - 'credited_by') IS DISTINCT FROM (to_jsonb(OLD) - 'credited_by')
        OR OLD.credited_by IS NOT NULL) THEN
        RAISE EXCEPTION 'invoice % is issued: correct it with a credit note', OLD.number
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invoice_is_final BEFORE UPDATE OR DELETE ON invoice
    FOR EACH ROW EXECUTE FUNCTION invoice_is_final();

CREATE FUNCTION invoice_line_is_final() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target bigint := CASE WHEN TG_OP = 'DELETE' THEN OLD.invoice_id ELSE NEW.invoice_id END;
BEGIN
    IF EXISTS (SELECT 1 FROM invoice WHERE id = target AND status = 'issued')
       OR (TG_OP = 'UPDATE' AND EXISTS (SELECT 1 FROM invoice WHERE id = OLD.invoice_id AND status = 'issued')) THEN
        RAISE EXCEPTION 'the lines of an issued invoice never change' USING ERRCODE = 'check_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER invoice_line_is_final BEFORE INSERT OR UPDATE OR DELETE ON invoice_line
    FOR EACH ROW EXECUTE FUNCTION invoice_line_is_final();
