-- Opening hours (the weekly pattern in the center's local time), closed days and make-up working days. Times
-- travel as 'HH:MM' text because a closing time of 24:00 has no Python `time`.

-- name: lock-hours$
-- Changes to the pattern and the closed days happen one at a time, so each audit entry's "before" is true.
SELECT pg_advisory_xact_lock(hashtext('fabhub.opening_hours'));

-- name: opening-hours
SELECT weekday, to_char(opens, 'HH24:MI') AS opens, to_char(closes, 'HH24:MI') AS closes
FROM opening_hours
ORDER BY weekday, opens;

-- name: delete-opening-hours!
DELETE FROM opening_hours;

-- name: insert-opening-hours!
INSERT INTO opening_hours (weekday, opens, closes)
SELECT w, CAST(o AS time), CAST(c AS time)
FROM unnest(CAST(:weekdays AS smallint[]), CAST(:opens AS text[]), CAST(:closes AS text[])) AS t (w, o, c);

-- name: closed-day^
SELECT day, reason FROM closed_day WHERE day = :day FOR UPDATE;

-- name: put-closed-day!
INSERT INTO closed_day (day, reason) VALUES (:day, :reason)
ON CONFLICT (day) DO UPDATE SET reason = EXCLUDED.reason;

-- name: delete-closed-day!
DELETE FROM closed_day WHERE day = :day;

-- name: closed-days
SELECT day, reason, updated_at FROM closed_day WHERE day >= :start AND day < :end ORDER BY day;

-- name: working-day^
SELECT day, as_weekday, reason FROM working_day WHERE day = :day FOR UPDATE;

-- name: put-working-day!
INSERT INTO working_day (day, as_weekday, reason) VALUES (:day, :as_weekday, :reason)
ON CONFLICT (day) DO UPDATE SET as_weekday = EXCLUDED.as_weekday, reason = EXCLUDED.reason;

-- name: delete-working-day!
DELETE FROM working_day WHERE day = :day;

-- name: working-days
SELECT day, as_weekday, reason, updated_at FROM working_day WHERE day >= :start AND day < :end ORDER BY day;

-- name: bookings-outside-hours
-- Confirmed bookings still ahead that the current hours no longer cover: they stay booked (a change of hours
-- does not cancel anyone), and the admin gets the list to sort out with the customers.
SELECT b.id, b.device_id, b.organization_id, lower(b.during) AS start, upper(b.during) AS "end"
FROM booking b
WHERE b.status = 'confirmed' AND upper(b.during) > :now
  AND (CAST(:window_start AS timestamptz) IS NULL OR b.during && tstzrange(:window_start, :window_end))
  AND NOT booking_open_hours(lower(b.during), upper(b.during), :zone) @> b.during::tstzrange
ORDER BY lower(b.during), b.id
LIMIT 500;

-- name: open-time$
-- The center's open time in a window (weekly hours less closed days, plus make-up working days), as the booking
-- check sees it.
SELECT booking_open_hours(:start, :end, :zone);
