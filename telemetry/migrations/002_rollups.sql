-- One-minute rollups of good numeric samples, kept by FabHub's own scheduled job (continuous aggregates
-- need the Timescale license). Partial aggregates (count, sum, min, max, last) so any coarser bucket is
-- exact: avg = sum(sum) / sum(n).
CREATE TABLE telemetry_rollup_1m (
    bucket    timestamptz      NOT NULL,
    device_id text             NOT NULL,
    signal    text             NOT NULL,
    n         integer          NOT NULL,
    sum       double precision NOT NULL,
    min       double precision NOT NULL,
    max       double precision NOT NULL,
    last      double precision NOT NULL,
    last_time timestamptz      NOT NULL,
    PRIMARY KEY (device_id, signal, bucket)
);

-- Rollups are complete for every minute before the watermark.
CREATE TABLE telemetry_rollup_state (
    singleton boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    watermark timestamptz NOT NULL
);

-- Time ranges that received samples after their minutes were rolled up (late data, spool replays).
CREATE TABLE telemetry_rollup_pending (
    from_time timestamptz NOT NULL,
    to_time   timestamptz NOT NULL CHECK (to_time >= from_time)
);

-- The bucketing function every query uses: time_bucket where TimescaleDB is active, date_bin on plain
-- PostgreSQL. Both take an origin, so day buckets start at the center's local midnight.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('telemetry_rollup_1m', 'bucket', chunk_time_interval => INTERVAL '7 days');
        CREATE FUNCTION telemetry_bucket(width interval, ts timestamptz, origin timestamptz)
            RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE
            AS 'SELECT time_bucket(width, ts, origin)';
    ELSE
        CREATE FUNCTION telemetry_bucket(width interval, ts timestamptz, origin timestamptz)
            RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE
            AS 'SELECT date_bin(width, ts, origin)';
    END IF;
END
$$;
