-- Time per state, parts and booked time per device and local day, inside a planned busy time given per
-- device as a multirange (:device_ids and :planned, in step). Offline is its own state: unknown, never
-- down. Pseudo-states: 'planned' (the planned time itself), 'booked' (live bookings inside it) and
-- 'micro_stop' (idle spans shorter than :micro_stop).

-- name: state-seconds
WITH planned AS (
    SELECT device_id, hours
    FROM unnest(CAST(:device_ids AS text[]), CAST(:planned AS tstzmultirange[])) AS p (device_id, hours)
),
days AS (
    SELECT g::date AS day,
           tstzrange(g::date::timestamp AT TIME ZONE :zone, (g::date + 1)::timestamp AT TIME ZONE :zone) AS r
    FROM generate_series((CAST(:start AS timestamptz) AT TIME ZONE :zone)::date,
                         ((CAST(:end AS timestamptz) - interval '1 microsecond') AT TIME ZONE :zone)::date,
                         interval '1 day') AS g
),
changes AS (
    SELECT p.device_id, c.time, c.state
    FROM planned p
    CROSS JOIN LATERAL (
        (SELECT time, state FROM telemetry_state
         WHERE device_id = p.device_id AND time < :start ORDER BY time DESC LIMIT 1)
        UNION ALL
        SELECT time, state FROM telemetry_state
        WHERE device_id = p.device_id AND time >= :start AND time < :end
    ) AS c
),
merged AS (  -- a state reported again (heartbeat, 1 Hz sampling) continues, it does not start anew
    SELECT device_id, time, state FROM (
        SELECT device_id, time, state, lag(state) OVER (PARTITION BY device_id ORDER BY time) AS previous
        FROM changes
    ) AS m
    WHERE previous IS DISTINCT FROM state
),
spans AS (
    SELECT device_id, state,
           tstzrange(greatest(time, :start),
                     least(coalesce(lead(time) OVER (PARTITION BY device_id ORDER BY time), :end), :end, :now)) AS r
    FROM merged
    WHERE greatest(time, :start) < least(:end, :now)
),
labelled AS (
    SELECT device_id, state, r FROM spans WHERE NOT isempty(r)
    UNION ALL
    SELECT device_id, 'micro_stop', r FROM spans
    WHERE state = 'idle' AND NOT isempty(r) AND upper(r) - lower(r) < :micro_stop
    UNION ALL
    SELECT p.device_id, 'booked', b.during::tstzrange
    FROM planned p JOIN booking b ON b.device_id = p.device_id
    WHERE b.status IN ('confirmed', 'in_progress', 'completed', 'no_show') AND b.during && tstzrange(:start, :end)
      AND (CAST(:organization_id AS bigint) IS NULL OR b.organization_id = :organization_id)
),
pieces AS (
    SELECT l.device_id, l.state, d.day, p.hours * tstzmultirange(l.r * d.r) AS m
    FROM labelled l
    JOIN planned p USING (device_id)
    JOIN days d ON d.r && l.r
    UNION ALL
    SELECT p.device_id, 'planned', d.day, p.hours * tstzmultirange(d.r)
    FROM planned p CROSS JOIN days d
)
SELECT device_id, day, state, sum(extract(epoch FROM upper(r) - lower(r)))::double precision AS seconds
FROM pieces CROSS JOIN LATERAL unnest(m) AS r
GROUP BY device_id, day, state;

-- name: parts
-- Production counted inside the planned time: the counters' deltas (the gateway turns cumulative counters
-- into deltas, resets and rollovers handled), good quality only.
WITH planned AS (
    SELECT device_id, hours
    FROM unnest(CAST(:device_ids AS text[]), CAST(:planned AS tstzmultirange[])) AS p (device_id, hours)
)
SELECT t.device_id, (t.time AT TIME ZONE :zone)::date AS day, t.signal, sum(t.value) AS n
FROM planned p
JOIN telemetry_sample t ON t.device_id = p.device_id
WHERE t.signal IN ('parts_total.delta', 'parts_good.delta', 'parts_bad.delta')
  AND t.time >= :start AND t.time < least(CAST(:end AS timestamptz), :now) AND t.quality = 0
  AND p.hours @> t.time
GROUP BY 1, 2, 3;

-- name: device-planned-time
-- A device's planned busy time: the center's opening hours minus its (not cancelled) maintenance windows.
SELECT d.id AS device_id,
       booking_open_hours(:start, :end, :zone)
       - coalesce((SELECT range_agg(m.during::tstzrange) FROM maintenance_window m
                   WHERE m.device_id = d.id AND m.cancelled_at IS NULL
                     AND m.during && tstzrange(:start, :end)), '{}') AS planned
FROM device d
WHERE d.id = ANY(:device_ids)
ORDER BY d.id;

-- name: customer-planned-time
-- A customer's planned busy time on each device: its live bookings (and no-shows: booked, not used).
SELECT b.device_id, range_agg(b.during::tstzrange) * tstzmultirange(tstzrange(:start, :end)) AS planned
FROM booking b
WHERE b.organization_id = :organization_id AND b.device_id = ANY(:device_ids)
  AND b.status IN ('confirmed', 'in_progress', 'completed', 'no_show') AND b.during && tstzrange(:start, :end)
GROUP BY b.device_id
ORDER BY b.device_id;

-- name: booking-span^
SELECT device_id, organization_id, lower(during) AS start, upper(during) AS "end", status
FROM booking WHERE id = :id;
