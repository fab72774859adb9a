-- Telemetry store. Chunk intervals are sized for the center's stated ceiling, 200 devices x 30 signals
-- x 1 Hz = 6,000 numeric rows/s, about 21.6 M rows and (with the unique index) about 2.5 GB an hour.
-- One-hour chunks keep the chunk being written, with its index, well inside a quarter of this 24 GiB
-- machine's memory (TimescaleDB's sizing rule) and let retention drop data by the hour. Text samples,
-- states and rollups arrive at a tiny fraction of that rate and get day or week chunks.

CREATE TABLE telemetry_sample (
    time      timestamptz      NOT NULL,
    device_id text             NOT NULL,
    signal    text             NOT NULL,
    value     double precision NOT NULL,
    -- 0 good, 1 uncertain, 2 bad (the OPC UA StatusCode severities)
    quality   smallint         NOT NULL DEFAULT 0 CHECK (quality BETWEEN 0 AND 2)
);
-- The index DESIGN.md asks for doubles as the sample's identity: a device reports one value per signal
-- and instant, so a replayed batch collides here instead of being stored twice.
CREATE UNIQUE INDEX telemetry_sample_key ON telemetry_sample (device_id, signal, time DESC);

CREATE TABLE telemetry_text_sample (
    time      timestamptz NOT NULL,
    device_id text        NOT NULL,
    signal    text        NOT NULL,
    value     text        NOT NULL,
    quality   smallint    NOT NULL DEFAULT 0 CHECK (quality BETWEEN 0 AND 2)
);
CREATE UNIQUE INDEX telemetry_text_sample_key ON telemetry_text_sample (device_id, signal, time DESC);

CREATE TABLE telemetry_state (
    time      timestamptz NOT NULL,
    device_id text        NOT NULL,
    state     text        NOT NULL
        CHECK (state IN ('running', 'setup', 'idle', 'down', 'maintenance', 'offline')),
    quality   smallint    NOT NULL DEFAULT 0 CHECK (quality BETWEEN 0 AND 2)
);
CREATE UNIQUE INDEX telemetry_state_key ON telemetry_state (device_id, time DESC);

-- Every (device, signal) ever written, so "latest value" is one index probe per series.
CREATE TABLE telemetry_series (
    device_id  text        NOT NULL,
    signal     text        NOT NULL,
    kind       text        NOT NULL CHECK (kind IN ('numeric', 'text', 'state')),
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, signal, kind)
);

-- Samples the writer refused, kept with the reason so nothing is lost and an operator can look.
CREATE TABLE telemetry_quarantine (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    time        timestamptz,
    device_id   text        NOT NULL,
    signal      text        NOT NULL,
    value       text        NOT NULL,
    reason      text        NOT NULL
);
CREATE UNIQUE INDEX telemetry_quarantine_key
    ON telemetry_quarantine (device_id, signal, time, md5(value), reason) NULLS NOT DISTINCT;
CREATE INDEX telemetry_quarantine_recent ON telemetry_quarantine (received_at DESC);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('telemetry_sample', 'time', chunk_time_interval => INTERVAL '1 hour');
        PERFORM create_hypertable('telemetry_text_sample', 'time', chunk_time_interval => INTERVAL '1 day');
        PERFORM create_hypertable('telemetry_state', 'time', chunk_time_interval => INTERVAL '7 days');
    END IF;
END
$$;
