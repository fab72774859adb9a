-- Make-up working days (调休): a day the weekly pattern leaves closed, or short, that opens with the hours of
-- another weekday, as when a Sunday is worked "as a Monday" to bridge a public holiday. A day is either
-- closed or a make-up working day, never both: the hours code refuses the second.
CREATE TABLE working_day (
    day        date     PRIMARY KEY,
    as_weekday smallint NOT NULL CHECK (as_weekday BETWEEN 1 AND 7),
    reason     text     NOT NULL CHECK (length(btrim(reason)) > 0)
);
SELECT track_updates('working_day');

-- The open hours now take each day's weekday from working_day when it names one; closed days still win.
CREATE OR REPLACE FUNCTION booking_open_hours(window_start timestamptz, window_end timestamptz, zone text)
RETURNS tstzmultirange
LANGUAGE sql STABLE
AS $$
    SELECT coalesce(
               range_agg(tstzrange((d.day + h.opens) AT TIME ZONE zone, (d.day + h.closes) AT TIME ZONE zone)),
               '{}'::tstzmultirange
           ) * tstzmultirange(tstzrange(window_start, window_end))
    FROM generate_series((window_start AT TIME ZONE zone)::date - 1, (window_end AT TIME ZONE zone)::date,
                         interval '1 day') AS g (ts)
    CROSS JOIN LATERAL (SELECT g.ts::date AS day) d
    LEFT JOIN working_day w ON w.day = d.day
    JOIN opening_hours h ON h.weekday = coalesce(w.as_weekday, extract(isodow FROM d.day))
    WHERE NOT EXISTS (SELECT 1 FROM closed_day c WHERE c.day = d.day)
$$;
