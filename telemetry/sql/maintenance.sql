-- Rollup and retention, run by scheduled jobs.

-- name: rollup-watermark-for-update$
SELECT watermark FROM telemetry_rollup_state FOR UPDATE;

-- name: oldest-sample-time$
SELECT min(time) FROM telemetry_sample;

-- name: set-rollup-watermark!
INSERT INTO telemetry_rollup_state (watermark) VALUES (:watermark)
ON CONFLICT (singleton) DO UPDATE SET watermark = excluded.watermark;

-- name: take-pending
DELETE FROM telemetry_rollup_pending RETURNING from_time, to_time;

-- name: oldest-pending$
SELECT min(from_time) FROM telemetry_rollup_pending;

-- name: rollup-range!
-- Recompute the one-minute rollups of [start, end) (both on minute boundaries) from raw samples.
INSERT INTO telemetry_rollup_1m AS r (bucket, device_id, signal, n, sum, min, max, last, last_time)
SELECT telemetry_bucket(INTERVAL '1 minute', time, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
       device_id, signal, count(*), sum(value), min(value), max(value),
       (array_agg(value ORDER BY time DESC))[1], max(time)
FROM telemetry_sample
WHERE time >= :start AND time < :end AND quality = 0
GROUP BY 1, 2, 3
ON CONFLICT (device_id, signal, bucket) DO UPDATE
SET n = excluded.n, sum = excluded.sum, min = excluded.min, max = excluded.max,
    last = excluded.last, last_time = excluded.last_time;

-- name: timescaledb-active$
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb');

-- name: drop-sample-chunks$
SELECT count(*) FROM drop_chunks('telemetry_sample', older_than => CAST(:cutoff AS timestamptz));

-- name: drop-text-sample-chunks$
SELECT count(*) FROM drop_chunks('telemetry_text_sample', older_than => CAST(:cutoff AS timestamptz));

-- name: delete-samples-before!
DELETE FROM telemetry_sample WHERE time < :cutoff;

-- name: delete-text-samples-before!
DELETE FROM telemetry_text_sample WHERE time < :cutoff;

-- name: delete-quarantine-before!
DELETE FROM telemetry_quarantine WHERE received_at < :cutoff;

-- name: delete-rollups-before!
DELETE FROM telemetry_rollup_1m WHERE bucket < :cutoff;
