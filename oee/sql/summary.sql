-- The nightly per-device, per-day summary.

-- name: store-day!
INSERT INTO oee_daily (
    device_id, day, planned_s, booked_s, running_s, setup_s, idle_s, down_s, maintenance_s, offline_s,
    micro_stop_s, parts_total, parts_good, ideal_cycle_s, computed_at)
VALUES (
    :device_id, :day, :planned_s, :booked_s, :running_s, :setup_s, :idle_s, :down_s, :maintenance_s, :offline_s,
    :micro_stop_s, :parts_total, :parts_good, :ideal_cycle_s, :computed_at)
ON CONFLICT (device_id, day) DO UPDATE SET
    planned_s = EXCLUDED.planned_s, booked_s = EXCLUDED.booked_s, running_s = EXCLUDED.running_s,
    setup_s = EXCLUDED.setup_s, idle_s = EXCLUDED.idle_s, down_s = EXCLUDED.down_s,
    maintenance_s = EXCLUDED.maintenance_s, offline_s = EXCLUDED.offline_s, micro_stop_s = EXCLUDED.micro_stop_s,
    parts_total = EXCLUDED.parts_total, parts_good = EXCLUDED.parts_good, ideal_cycle_s = EXCLUDED.ideal_cycle_s,
    computed_at = EXCLUDED.computed_at;

-- name: stored-days
SELECT device_id, day, planned_s, booked_s, running_s, setup_s, idle_s, down_s, maintenance_s, offline_s,
       micro_stop_s, parts_total, parts_good, ideal_cycle_s
FROM oee_daily
WHERE device_id = ANY(:device_ids) AND day >= :first AND day <= :last
ORDER BY device_id, day;

-- name: days-to-summarize
-- Past local days (up to :last) since :first that have no summary for some device yet.
SELECT g::date AS day
FROM generate_series(CAST(:first AS date), CAST(:last AS date), interval '1 day') AS g
WHERE EXISTS (SELECT 1 FROM unnest(CAST(:device_ids AS text[])) AS d (id)
              WHERE NOT EXISTS (SELECT 1 FROM oee_daily o WHERE o.device_id = d.id AND o.day = g::date))
ORDER BY 1;
