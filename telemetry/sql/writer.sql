-- Statements of the batch writer. The COPY statements are read through their `.sql` attribute.

-- name: copy-samples!
COPY telemetry_sample (time, device_id, signal, value, quality) FROM STDIN (FORMAT BINARY)

-- name: copy-text-samples!
COPY telemetry_text_sample (time, device_id, signal, value, quality) FROM STDIN (FORMAT BINARY)

-- name: copy-states!
COPY telemetry_state (time, device_id, state, quality) FROM STDIN (FORMAT BINARY)

-- name: register-series*!
INSERT INTO telemetry_series (device_id, signal, kind)
VALUES (:device_id, :signal, :kind)
ON CONFLICT DO NOTHING;

-- name: quarantine*!
INSERT INTO telemetry_quarantine (time, device_id, signal, value, reason)
VALUES (:time, :device_id, :signal, :value, :reason)
ON CONFLICT DO NOTHING;

-- name: mark-late!
-- Minutes that were perhaps rolled up already and must be rolled up again.
INSERT INTO telemetry_rollup_pending (from_time, to_time) VALUES (:from_time, :to_time);
