-- Counter baselines (telemetry.counters): read under lock and written in the transaction of the deltas.

-- name: lock-baselines
-- In key order, so two writers locking overlapping counters cannot deadlock.
SELECT b.device_id, b.signal, b.raw, b.time, b.epoch
FROM telemetry_counter b
JOIN unnest(:device_ids::text[], :signals::text[]) AS k(device_id, signal) USING (device_id, signal)
ORDER BY b.device_id, b.signal
FOR UPDATE OF b;

-- name: save-baselines*!
INSERT INTO telemetry_counter (device_id, signal, raw, time, epoch)
VALUES (:device_id, :signal, :raw, :time, :epoch)
ON CONFLICT (device_id, signal) DO UPDATE
SET raw = EXCLUDED.raw, time = EXCLUDED.time, epoch = EXCLUDED.epoch
WHERE telemetry_counter.time < EXCLUDED.time;

-- name: lock-counters^
-- Before reading the baselines: a counter seen for the first time has no row to lock yet, and two writers
-- (two ingest workers, or two connections of one) would each take its first value as their baseline and
-- lose the step between them. Held until the transaction ends; in lock order, so no two writers deadlock.
SELECT pg_advisory_xact_lock(hashtext('fabhub.counter'), lock_id)
FROM (
    SELECT DISTINCT hashtext(device_id || '/' || signal) AS lock_id
    FROM unnest(:device_ids::text[], :signals::text[]) AS k(device_id, signal)
    ORDER BY lock_id
) AS ordered;
