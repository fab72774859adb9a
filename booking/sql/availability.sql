-- name: free-slots
-- The bookable free time of each device in one round trip: opening hours minus closed days, maintenance
-- and live bookings (multiranges), from now on, cut to the class's grid (counted from a local midnight,
-- :origin), at least one minimum booking long.
WITH open AS (SELECT booking_open_hours(:start, :end, :zone) AS hours),
free AS (
    SELECT d.id AS device_id,
           unnest(
               open.hours * tstzmultirange(tstzrange(greatest(CAST(:start AS timestamptz), :now), :end))
               - coalesce((SELECT range_agg(b.during::tstzrange) FROM booking b
                           WHERE b.device_id = d.id AND b.status IN ('confirmed', 'in_progress', 'completed')
                             AND b.during && tstzrange(:start, :end)), '{}')
               - coalesce((SELECT range_agg(m.during::tstzrange) FROM maintenance_window m
                           WHERE m.device_id = d.id AND m.cancelled_at IS NULL
                             AND m.during && tstzrange(:start, :end)), '{}')
           ) AS r
    FROM device d CROSS JOIN open
    WHERE d.id = ANY(:device_ids) AND d.retired_at IS NULL
),
cut AS (
    SELECT device_id,
           date_bin(:step, lower(r) + :step - interval '1 microsecond', :origin) AS start,
           date_bin(:step, upper(r), :origin) AS "end"
    FROM free
)
SELECT device_id, start, "end" FROM cut WHERE "end" - start >= :min_length ORDER BY device_id, start;
