-- name: free-time
-- One row per device: its free time inside the window after opening hours, closed days, maintenance and
-- live bookings, as a multirange. One round trip however many devices.
WITH open AS (SELECT booking_open_hours(:start, :end, :zone) AS hours)
SELECT d.id AS device_id,
       open.hours
       - coalesce((SELECT range_agg(b.during::tstzrange) FROM booking b
                   WHERE b.device_id = d.id AND b.status IN ('confirmed', 'in_progress', 'completed')
                     AND b.during && tstzrange(:start, :end)), '{}')
       - coalesce((SELECT range_agg(m.during::tstzrange) FROM maintenance_window m
                   WHERE m.device_id = d.id AND m.cancelled_at IS NULL
                     AND m.during && tstzrange(:start, :end)), '{}') AS free
FROM device d CROSS JOIN open
WHERE d.id = ANY(:device_ids) AND d.retired_at IS NULL
ORDER BY d.id;
