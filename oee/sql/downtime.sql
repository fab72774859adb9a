-- Down intervals and the reasons technicians attach to them.

-- name: down-intervals
-- The down intervals of :device_ids overlapping [:start, :end). An interval begins at a change into 'down'
-- (a repeated 'down' row continues it, as in state-seconds) and ends at the next row of another state,
-- wherever that lies (null: still down). One under way at :start keeps its true start, found by looking
-- back past the repeated rows. With :planned (a multirange per device, in step with :device_ids),
-- `inside_s` is the part of the interval inside [:start, least(:end, :now)) and that multirange; without,
-- it is null. `window_s` is the part inside [:start, least(:end, :now)) whatever the planned time. Newest
-- first, at most :limit rows (null: all).
WITH devices AS (
    SELECT device_id, planned
    FROM unnest(CAST(:device_ids AS text[]), CAST(:planned AS tstzmultirange[])) AS d (device_id, planned)
),
before AS (  -- the state of each device at :start
    SELECT d.device_id, l.time, l.state
    FROM devices d
    CROSS JOIN LATERAL (
        SELECT time, state FROM state_change
        WHERE device_id = d.device_id AND time < :start
        ORDER BY time DESC LIMIT 1
    ) AS l
),
starts AS (
    SELECT b.device_id, f.time AS start
    FROM before b
    CROSS JOIN LATERAL (  -- the first down row after the last row of another state
        SELECT t.time FROM state_change t
        WHERE t.device_id = b.device_id AND t.time <= b.time
          AND t.time > coalesce((SELECT max(o.time) FROM state_change o
                                 WHERE o.device_id = b.device_id AND o.time < b.time AND o.state <> 'down'),
                                CAST('-infinity' AS timestamptz))
        ORDER BY t.time LIMIT 1
    ) AS f
    WHERE b.state = 'down'
    UNION ALL
    SELECT d.device_id, w.time
    FROM devices d
    LEFT JOIN before b USING (device_id)
    CROSS JOIN LATERAL (  -- per device, in index order: no sort of the whole window
        SELECT time, state, lag(state) OVER (ORDER BY time) AS previous
        FROM state_change
        WHERE device_id = d.device_id AND time >= :start AND time < :end
    ) AS w
    -- the first row of the window follows the state at :start
    WHERE w.state = 'down' AND coalesce(w.previous, b.state) IS DISTINCT FROM 'down'
),
intervals AS (
    SELECT s.device_id, s.start, e.time AS stop
    FROM starts s
    LEFT JOIN LATERAL (
        SELECT time FROM state_change
        WHERE device_id = s.device_id AND time > s.start AND state <> 'down'
        ORDER BY time LIMIT 1
    ) AS e ON true
)
SELECT i.device_id, i.start, i.stop AS "end",
       r.code, c.name, c.name_zh, r.note, r.set_by, r.set_at,
       (SELECT coalesce(sum(extract(epoch FROM upper(x) - lower(x))), 0)
        FROM unnest(d.planned * tstzmultirange(
            tstzrange(i.start, i.stop)
            * tstzrange(:start, greatest(CAST(:start AS timestamptz), least(CAST(:end AS timestamptz), :now))))) AS x
        WHERE d.planned IS NOT NULL)::double precision AS inside_s,
       (SELECT coalesce(sum(extract(epoch FROM upper(x) - lower(x))), 0)
        FROM unnest(tstzmultirange(tstzrange(i.start, i.stop)
            * tstzrange(:start, greatest(CAST(:start AS timestamptz), least(CAST(:end AS timestamptz), :now)))))
        AS x)::double precision AS window_s
FROM intervals i
JOIN devices d USING (device_id)
LEFT JOIN downtime_reason r ON r.device_id = i.device_id AND r.start = i.start
LEFT JOIN downtime_reason_code c ON c.code = r.code
WHERE i.stop IS NULL OR i.stop > :start
ORDER BY i.start DESC, i.device_id
LIMIT :limit;

-- name: reason-codes
SELECT code, name, name_zh FROM downtime_reason_code ORDER BY code = 'other', code;

-- name: lock-downtime-reason!
-- Serializes changes to the reason of one interval, so the `before` of each audit entry is what it replaced.
SELECT pg_advisory_xact_lock(
    hashtext('fabhub.downtime_reason'),
    hashtext(:device_id || '@' || CAST(extract(epoch FROM CAST(:start AS timestamptz)) AS text)));

-- name: downtime-reason^
SELECT r.code, c.name, c.name_zh, r.note, r.set_by, r.set_at
FROM downtime_reason r JOIN downtime_reason_code c USING (code)
WHERE r.device_id = :device_id AND r.start = :start;

-- name: put-downtime-reason!
INSERT INTO downtime_reason (device_id, start, code, note, set_by, set_at)
VALUES (:device_id, :start, :code, :note, :set_by, :set_at)
ON CONFLICT (device_id, start) DO UPDATE SET
    code = EXCLUDED.code, note = EXCLUDED.note, set_by = EXCLUDED.set_by, set_at = EXCLUDED.set_at;

-- name: delete-downtime-reason!
DELETE FROM downtime_reason WHERE device_id = :device_id AND start = :start;
