-- Time per state, parts and booked time per device and local day, inside a planned busy time given per
-- device as a multirange (:device_ids and :planned, in step). Offline is its own state: unknown, never
-- down. Pseudo-states: 'planned' (the planned time itself), 'booked' (live bookings inside it) and
-- 'micro_stop' (idle spans shorter than :micro_stop).

-- name: state-seconds
WITH planned AS (
    SELECT device_id, hours
    FROM unnest(CAST(:device_ids AS text[]), CAST(:planned AS tstzmultirange[])) AS p (device_id, hours)
),
bounds AS (  -- local midnights, from the first day of the window to the one after its last
    SELECT array_agg(g::date ORDER BY g) AS day,
           array_agg(g::date::timestamp AT TIME ZONE :zone ORDER BY g) AS midnight
    FROM generate_series((CAST(:start AS timestamptz) AT TIME ZONE :zone)::date,
                         ((CAST(:end AS timestamptz) - interval '1 microsecond') AT TIME ZONE :zone)::date + 1,
                         interval '1 day') AS g
),
spans AS (  -- per device in index order, no sort of all rows; a state reported again continues. Rows are read
            -- from :micro_stop before the window to :micro_stop after it, so that whether an idle span is a
            -- micro-stop does not depend on where the window cuts it (so the summary of a day agrees with a month).
    SELECT p.device_id, s.state,
           tstzrange(greatest(s.time, :start), least(coalesce(s.next, :end), :end, :now)) AS r,
           s.state = 'idle' AND least(coalesce(s.next, :now), :now) - s.time < :micro_stop AS micro
    FROM planned p
    CROSS JOIN LATERAL (
        SELECT time, state, lead(time) OVER (ORDER BY time) AS next
        FROM (
            SELECT time, state, lag(state) OVER (ORDER BY time) AS previous
            FROM state_change
            WHERE device_id = p.device_id AND time < CAST(:end AS timestamptz) + :micro_stop
              AND time >= coalesce((SELECT max(time) FROM state_change
                                    WHERE device_id = p.device_id
                                      AND time < CAST(:start AS timestamptz) - :micro_stop),
                                   CAST(:start AS timestamptz) - :micro_stop)
        ) AS m
        WHERE previous IS DISTINCT FROM state
    ) AS s
    WHERE greatest(s.time, :start) < least(:end, :now) AND coalesce(s.next, :end) > :start
),
labelled AS (
    SELECT device_id, state, r FROM spans WHERE NOT isempty(r)
    UNION ALL
    SELECT device_id, 'micro_stop', r FROM spans WHERE micro AND NOT isempty(r)
    UNION ALL
    SELECT p.device_id, 'booked', b.during::tstzrange * tstzrange(:start, :end)
    FROM planned p JOIN booking_slot b ON b.device_id = p.device_id
    WHERE b.status IN ('confirmed', 'in_progress', 'completed', 'no_show') AND b.during && tstzrange(:start, :end)
      AND (CAST(:organization_id AS bigint) IS NULL OR b.organization_id = :organization_id)
),
pieces AS (  -- each span on each local day it touches (j: the number of the day), inside the planned time
    SELECT l.device_id, l.state, j,
           p.hours * tstzmultirange(l.r * tstzrange((SELECT midnight FROM bounds)[j],
                                                    (SELECT midnight FROM bounds)[j + 1])) AS m
    FROM labelled l
    JOIN planned p USING (device_id)
    CROSS JOIN LATERAL generate_series(width_bucket(lower(l.r), (SELECT midnight FROM bounds)),
                                       width_bucket(upper(l.r) - interval '1 microsecond',
                                                    (SELECT midnight FROM bounds))) AS j
    UNION ALL
    SELECT p.device_id, 'planned', j,
           p.hours * tstzmultirange(tstzrange((SELECT midnight FROM bounds)[j], (SELECT midnight FROM bounds)[j + 1]))
    FROM planned p
    CROSS JOIN generate_series(1, (SELECT cardinality(day) - 1 FROM bounds)) AS j
)
SELECT device_id, (SELECT day FROM bounds)[j] AS day, state,
       extract(epoch FROM sum(upper(r) - lower(r)))::double precision AS seconds
FROM pieces CROSS JOIN LATERAL unnest(m) AS r
GROUP BY device_id, j, state;

-- name: parts
-- Production counted inside the planned time: the counters' deltas (the gateway turns cumulative counters
-- into deltas, resets and rollovers handled), good quality only.
WITH planned AS (
    SELECT device_id, hours
    FROM unnest(CAST(:device_ids AS text[]), CAST(:planned AS tstzmultirange[])) AS p (device_id, hours)
)
SELECT t.device_id, (t.time AT TIME ZONE :zone)::date AS day, t.signal, sum(t.value) AS n
FROM planned p
JOIN measured_value t ON t.device_id = p.device_id
WHERE t.signal IN ('parts_total.delta', 'parts_good.delta', 'parts_bad.delta')
  AND t.time >= :start AND t.time < least(CAST(:end AS timestamptz), :now) AND t.quality = 0
  AND p.hours @> t.time
GROUP BY 1, 2, 3;

-- name: device-planned-time
-- A device's planned busy time: the center's opening hours minus its (not cancelled) maintenance windows.
SELECT d.id AS device_id,
       booking_open_hours(:start, :end, :zone)
       - coalesce((SELECT range_agg(m.during::tstzrange) FROM maintenance_slot m
                   WHERE m.device_id = d.id AND m.cancelled_at IS NULL
                     AND m.during && tstzrange(:start, :end)), '{}') AS planned
FROM device_entry d
WHERE d.id = ANY(:device_ids)
ORDER BY d.id;

-- name: customer-planned-time
-- A customer's planned busy time on each device: its live bookings (and no-shows: booked, not used). With
-- :leave_out_frozen, minus the pieces of its bookings whose results are frozen and lie wholly inside the
-- window: those are read from booking_result instead (frozen-days, with the same condition). A no-show's
-- slot may be booked again: another organization's booking there is that organization's time, not this one's.
SELECT b.device_id,
       range_agg(b.during::tstzrange) * tstzmultirange(tstzrange(:start, :end))
       - CASE WHEN CAST(:leave_out_frozen AS boolean) THEN coalesce(
             (SELECT range_agg(r.during) FROM booking_result r JOIN booking_slot f ON f.id = r.booking_id
              WHERE f.organization_id = :organization_id AND r.device_id = b.device_id
                AND r.during <@ tstzrange(:start, :end)), '{}')
         ELSE '{}' END
       - coalesce((SELECT range_agg(o.during::tstzrange) FROM booking_slot o
                   WHERE o.device_id = b.device_id AND o.organization_id <> :organization_id
                     AND o.status IN ('confirmed', 'in_progress', 'completed')
                     AND o.during && tstzrange(:start, :end)), '{}') AS planned
FROM booking_slot b
WHERE b.organization_id = :organization_id AND b.device_id = ANY(:device_ids)
  AND b.status IN ('confirmed', 'in_progress', 'completed', 'no_show') AND b.during && tstzrange(:start, :end)
GROUP BY b.device_id
ORDER BY b.device_id;

-- name: booking-span^
SELECT device_id, organization_id, lower(during) AS start, upper(during) AS "end", status
FROM booking_slot WHERE id = :id;
