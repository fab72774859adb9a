-- The writer's merge path, taken when a batch collides with stored rows (a replay): stage by COPY,
-- then insert what is new. First write wins: a stored sample (same device, signal, instant) stays.

-- name: create-staging#
-- Per-connection staging tables, emptied at every commit.
CREATE TEMP TABLE IF NOT EXISTS staging_sample (LIKE telemetry_sample) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staging_text_sample (LIKE telemetry_text_sample) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staging_state (LIKE telemetry_state) ON COMMIT DELETE ROWS;

-- name: copy-staged-samples!
COPY staging_sample (time, device_id, signal, value, quality) FROM STDIN (FORMAT BINARY)

-- name: copy-staged-text-samples!
COPY staging_text_sample (time, device_id, signal, value, quality) FROM STDIN (FORMAT BINARY)

-- name: copy-staged-states!
COPY staging_state (time, device_id, state, quality) FROM STDIN (FORMAT BINARY)

-- name: merge-staged-samples!
INSERT INTO telemetry_sample SELECT * FROM staging_sample ON CONFLICT DO NOTHING;

-- name: merge-staged-text-samples!
INSERT INTO telemetry_text_sample SELECT * FROM staging_text_sample ON CONFLICT DO NOTHING;

-- name: merge-staged-states!
INSERT INTO telemetry_state SELECT * FROM staging_state ON CONFLICT DO NOTHING;
