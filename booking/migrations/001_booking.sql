-- Booking: the catalogue (synced from devices.yaml), when the center is open, when a device is under
-- maintenance, and who has it when. The database itself guarantees that no device is ever double-booked.

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE device_class (
    id                          text PRIMARY KEY,
    name                        text          NOT NULL,
    name_zh                     text,
    hourly_rate                 numeric(12,2) NOT NULL CHECK (hourly_rate >= 0),
    billing_basis               text          NOT NULL CHECK (billing_basis IN ('booked', 'metered', 'overage')),
    metered_minimum_share       numeric(5,4)  NOT NULL CHECK (metered_minimum_share BETWEEN 0 AND 1),
    min_booking                 interval      NOT NULL,
    max_booking                 interval      NOT NULL,
    granularity                 interval      NOT NULL,
    horizon_days                integer       NOT NULL,
    max_future_hours_per_org    integer       NOT NULL,
    late_cancellation           interval      NOT NULL,
    no_show_after               interval      NOT NULL,
    late_cancellation_fee_share numeric(5,4)  NOT NULL CHECK (late_cancellation_fee_share BETWEEN 0 AND 1),
    no_show_fee_share           numeric(5,4)  NOT NULL CHECK (no_show_fee_share BETWEEN 0 AND 1),
    retired_at                  timestamptz
);

-- Devices are never deleted: one that leaves devices.yaml is retired and keeps its bookings.
CREATE TABLE device (
    id          text PRIMARY KEY,
    class_id    text          NOT NULL REFERENCES device_class (id),
    name        text          NOT NULL,
    hourly_rate numeric(12,2) CHECK (hourly_rate >= 0),  -- overrides the class rate when set
    retired_at  timestamptz
);
CREATE INDEX device_class_id ON device (class_id);

CREATE TABLE subsidy_program (
    id         text PRIMARY KEY,
    name       text          NOT NULL,
    share      numeric(5,4)  NOT NULL CHECK (share BETWEEN 0 AND 1),
    classes    text[]        NOT NULL,
    valid_from date          NOT NULL,
    valid_to   date          NOT NULL CHECK (valid_to >= valid_from),
    annual_cap numeric(12,2) NOT NULL CHECK (annual_cap >= 0),
    retired_at timestamptz
);

-- The weekly pattern in the center's local time (ISO weekday, 1 = Monday). `closes` may be 24:00, so an
-- interval ending at midnight joins the next day's interval starting at 00:00 (overnight bookings).
CREATE TABLE opening_hours (
    weekday smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    opens   time     NOT NULL,
    closes  time     NOT NULL,
    CHECK (opens < closes),
    EXCLUDE USING gist (weekday WITH =, tsrange(DATE '2000-01-03' + opens, DATE '2000-01-03' + closes) WITH &&)
);
INSERT INTO opening_hours (weekday, opens, closes) VALUES
    (1, '08:00', '20:00'), (2, '08:00', '20:00'), (3, '08:00', '20:00'), (4, '08:00', '20:00'),
    (5, '08:00', '20:00'), (6, '09:00', '17:00');

CREATE TABLE closed_day (
    day    date PRIMARY KEY,
    reason text NOT NULL CHECK (length(btrim(reason)) > 0)
);

-- Half-open, finite, non-empty ranges only.
CREATE DOMAIN booking_range AS tstzrange
    CHECK (NOT isempty(VALUE) AND NOT lower_inf(VALUE) AND NOT upper_inf(VALUE)
           AND lower_inc(VALUE) AND NOT upper_inc(VALUE));

CREATE TABLE maintenance_window (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id    text          NOT NULL REFERENCES device (id),
    during       booking_range NOT NULL,
    reason       text          NOT NULL CHECK (length(btrim(reason)) > 0),
    created_by   bigint        REFERENCES app_user (id),
    created_at   timestamptz   NOT NULL,
    cancelled_at timestamptz,
    CONSTRAINT maintenance_no_overlap EXCLUDE USING gist (device_id WITH =, (during::tstzrange) WITH &&)
        WHERE (cancelled_at IS NULL)
);

CREATE TABLE booking (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id         text          NOT NULL REFERENCES device (id),
    organization_id   bigint        NOT NULL REFERENCES organization (id),
    user_id           bigint        NOT NULL REFERENCES app_user (id),  -- who uses the machine
    created_by        bigint        NOT NULL REFERENCES app_user (id),
    during            booking_range NOT NULL,
    status            text          NOT NULL DEFAULT 'confirmed'
        CHECK (status IN ('confirmed', 'in_progress', 'completed', 'cancelled', 'no_show')),
    purpose           text          NOT NULL DEFAULT '',
    -- The quote, fixed when booked: later rate or program changes do not change it.
    hourly_rate       numeric(12,2) NOT NULL,
    gross             numeric(12,2) NOT NULL CHECK (gross >= 0),
    subsidy_program   text          REFERENCES subsidy_program (id),
    subsidy_share     numeric(5,4),
    subsidy           numeric(12,2) NOT NULL DEFAULT 0 CHECK (subsidy >= 0 AND subsidy <= gross),
    net               numeric(12,2) NOT NULL CHECK (net = gross - subsidy),
    override_reason   text,
    created_at        timestamptz   NOT NULL,
    checked_in_at     timestamptz,
    finished_at       timestamptz,
    cancelled_at      timestamptz,
    cancelled_by      bigint        REFERENCES app_user (id),
    late_cancellation boolean,
    fee               numeric(12,2) NOT NULL DEFAULT 0 CHECK (fee >= 0),  -- late-cancellation or no-show fee
    -- The guarantee: no two live bookings of one device overlap, whatever the concurrency. A cancelled
    -- booking or a no-show frees the rest of its slot.
    CONSTRAINT booking_no_overlap EXCLUDE USING gist (device_id WITH =, (during::tstzrange) WITH &&)
        WHERE (status IN ('confirmed', 'in_progress', 'completed'))
);
CREATE INDEX booking_organization ON booking (organization_id, upper(during));
CREATE INDEX booking_due ON booking (lower(during)) WHERE status IN ('confirmed', 'in_progress');

-- A booking as the API and the calendar show it: with its class, device and organization names.
CREATE VIEW booking_detail AS
SELECT b.id, b.device_id, d.class_id, d.name AS device_name, b.organization_id, o.name AS organization_name,
       b.user_id, b.created_by, lower(b.during) AS start, upper(b.during) AS "end", b.status, b.purpose,
       b.hourly_rate, b.gross, b.subsidy_program, b.subsidy_share, b.subsidy, b.net, b.override_reason,
       b.created_at, b.checked_in_at, b.finished_at, b.cancelled_at, b.cancelled_by, b.late_cancellation, b.fee
FROM booking b
JOIN device d ON d.id = b.device_id
JOIN organization o ON o.id = b.organization_id;

-- Idempotency keys of POST requests, per user, kept a day: a retried request gets the first answer.
CREATE TABLE idempotency_key (
    user_id        bigint      NOT NULL REFERENCES app_user (id),
    key            text        NOT NULL,
    request_sha256 bytea       NOT NULL,
    status         integer,
    response       jsonb,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (user_id, key)
);

-- The open hours (minus closed days) inside a window, as one multirange. Availability and the booking
-- check both use it, so they can never disagree.
CREATE FUNCTION booking_open_hours(window_start timestamptz, window_end timestamptz, zone text)
RETURNS tstzmultirange
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
               range_agg(tstzrange((d.day + h.opens) AT TIME ZONE zone, (d.day + h.closes) AT TIME ZONE zone)),
               '{}'::tstzmultirange
           ) * tstzmultirange(tstzrange(window_start, window_end))
    FROM generate_series((window_start AT TIME ZONE zone)::date - 1, (window_end AT TIME ZONE zone)::date,
                         interval '1 day') AS g (ts)
    CROSS JOIN LATERAL (SELECT g.ts::date AS day) d
    JOIN opening_hours h ON h.weekday = extract(isodow FROM d.day)
    WHERE NOT EXISTS (SELECT 1 FROM closed_day c WHERE c.day = d.day)
$$;
