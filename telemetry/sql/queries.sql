-- Read queries of the telemetry API. Windows are half-open: start <= time < end.

-- name: devices
SELECT DISTINCT device_id FROM telemetry_series ORDER BY device_id;

-- name: series-of-device
SELECT signal, kind FROM telemetry_series WHERE device_id = :device_id ORDER BY signal;

-- name: latest-numeric
-- One backward index probe per series: cheap whatever the table size.
SELECT s.device_id, s.signal, l.time, l.value, l.quality
FROM telemetry_series s
CROSS JOIN LATERAL (
    SELECT t.time, t.value, t.quality
    FROM telemetry_sample t
    WHERE t.device_id = s.device_id AND t.signal = s.signal
    ORDER BY t.time DESC
    LIMIT 1
) l
WHERE s.kind = 'numeric' AND (CAST(:device_id AS text) IS NULL OR s.device_id = :device_id)
ORDER BY s.device_id, s.signal;

-- name: latest-text
SELECT s.device_id, s.signal, l.time, l.value, l.quality
FROM telemetry_series s
CROSS JOIN LATERAL (
    SELECT t.time, t.value, t.quality
    FROM telemetry_text_sample t
    WHERE t.device_id = s.device_id AND t.signal = s.signal
    ORDER BY t.time DESC
    LIMIT 1
) l
WHERE s.kind = 'text' AND (CAST(:device_id AS text) IS NULL OR s.device_id = :device_id)
ORDER BY s.device_id, s.signal;

-- name: latest-states
SELECT s.device_id, l.time, l.state, l.quality
FROM telemetry_series s
CROSS JOIN LATERAL (
    SELECT t.time, t.state, t.quality
    FROM telemetry_state t
    WHERE t.device_id = s.device_id
    ORDER BY t.time DESC
    LIMIT 1
) l
WHERE s.kind = 'state' AND (CAST(:device_id AS text) IS NULL OR s.device_id = :device_id)
ORDER BY s.device_id;

-- name: raw-range
SELECT time, value, quality
FROM telemetry_sample
WHERE device_id = :device_id AND signal = :signal AND time >= :start AND time < :end
ORDER BY time
LIMIT :limit;

-- name: raw-text-range
SELECT time, value, quality
FROM telemetry_text_sample
WHERE device_id = :device_id AND signal = :signal AND time >= :start AND time < :end
ORDER BY time
LIMIT :limit;

-- name: bucketed-range
-- Good samples only. Whole minutes in [rollup_from, rollup_to) come from the one-minute rollups, the
-- edges from raw samples; both are reduced to the same partial aggregates and merged per bucket.
WITH parts AS (
    SELECT telemetry_bucket(:width, r.bucket, :origin) AS b,
           r.n, r.sum, r.min, r.max, r.last, r.last_time
    FROM telemetry_rollup_1m r
    WHERE r.device_id = :device_id AND r.signal = :signal
      AND r.bucket >= :rollup_from AND r.bucket < :rollup_to
    UNION ALL
    SELECT telemetry_bucket(:width, s.time, :origin), 1, s.value, s.value, s.value, s.value, s.time
    FROM telemetry_sample s
    WHERE s.device_id = :device_id AND s.signal = :signal AND s.quality = 0
      AND s.time >= :start AND s.time < :end
      AND (s.time < :rollup_from OR s.time >= :rollup_to)
)
SELECT b AS bucket,
       sum(n)::bigint AS count,
       min(min) AS min,
       max(max) AS max,
       sum(sum) / sum(n) AS avg,
       (array_agg(last ORDER BY last_time DESC))[1] AS last
FROM parts
GROUP BY b
ORDER BY b;

-- name: state-timeline
-- Intervals clipped to [start, min(end, now)): the state in force at `start` is the last change before
-- it; repeated reports of the same state are merged; a state lasts until the next change.
WITH changes AS (
    (SELECT time, state
     FROM telemetry_state
     WHERE device_id = :device_id AND time < :start
     ORDER BY time DESC
     LIMIT 1)
    UNION ALL
    SELECT time, state
    FROM telemetry_state
    WHERE device_id = :device_id AND time >= :start AND time < :end
),
marked AS (
    SELECT time, state, lag(state) OVER (ORDER BY time) AS previous FROM changes
),
starts AS (
    SELECT time, state FROM marked WHERE previous IS DISTINCT FROM state
),
spans AS (
    SELECT state,
           greatest(time, :start) AS start,
           least(coalesce(lead(time) OVER (ORDER BY time), :end), :end, :now) AS "end"
    FROM starts
)
SELECT state, start, "end" FROM spans WHERE "end" > start ORDER BY start;

-- name: quarantined
SELECT id, received_at, time, device_id, signal, value, reason
FROM telemetry_quarantine
WHERE CAST(:device_id AS text) IS NULL OR device_id = :device_id
ORDER BY received_at DESC, id DESC
LIMIT :limit;

-- name: rollup-watermark$
SELECT watermark FROM telemetry_rollup_state;

-- name: current-states
-- Each device's latest state and since when it has held it: heartbeats repeat a state without restarting it,
-- so "since" is the first row after the last row of another state (both backward index probes).
SELECT d.device_id, cur.state, cur.time AS seen,
       coalesce((SELECT min(t.time) FROM telemetry_state t
                 WHERE t.device_id = d.device_id
                   AND t.time > coalesce((SELECT max(p.time) FROM telemetry_state p
                                          WHERE p.device_id = d.device_id AND p.state <> cur.state
                                            AND p.time <= cur.time), '-infinity')),
                cur.time) AS since
FROM unnest(CAST(:devices AS text[])) AS d(device_id)
CROSS JOIN LATERAL (
    SELECT s.state, s.time FROM telemetry_state s WHERE s.device_id = d.device_id ORDER BY s.time DESC LIMIT 1
) cur
ORDER BY d.device_id;

-- name: activity-after-start
-- What each machine did around a start (:device_ids, :starts, :untils in step; one row per position n,
-- from 1): the state it was in at the start (the last state row at or before it; a state holds until the
-- next row), the first running/setup row within [start, until], and whether it was seen online at all in
-- (start, until] (offline is "unknown", never "not used"). The booking life-cycle's check-in evidence.
SELECT w.n, w.device_id,
       (SELECT s.state FROM telemetry_state s
        WHERE s.device_id = w.device_id AND s.time <= w.start
        ORDER BY s.time DESC LIMIT 1) AS state_at_start,
       (SELECT min(s.time) FROM telemetry_state s
        WHERE s.device_id = w.device_id AND s.state IN ('running', 'setup')
          AND s.time >= w.start AND s.time <= w.until) AS first_active,
       EXISTS (SELECT 1 FROM telemetry_state s
               WHERE s.device_id = w.device_id AND s.state <> 'offline'
                 AND s.time > w.start AND s.time <= w.until) AS online_after_start
FROM unnest(CAST(:device_ids AS text[]), CAST(:starts AS timestamptz[]), CAST(:untils AS timestamptz[]))
     WITH ORDINALITY AS w (device_id, start, until, n)
ORDER BY w.n;
