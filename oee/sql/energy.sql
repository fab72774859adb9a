-- Energy from the counters' deltas (`energy_kwh.delta`, kWh, counted exactly once by the telemetry writer) of
-- each machine's sources: its power meters, else its own energy counter (:machine_ids and :source_ids in step,
-- a machine once per source). A delta covers the time since the previous one and is the machine's idle energy
-- when the machine was not running just before it.

-- name: energy-per-day
SELECT s.machine_id, (v.time AT TIME ZONE :zone)::date AS day,
       sum(v.value) AS kwh,
       coalesce(sum(v.value) FILTER (WHERE st.state IS DISTINCT FROM 'running'), 0) AS idle_kwh
FROM unnest(CAST(:machine_ids AS text[]), CAST(:source_ids AS text[])) AS s (machine_id, source_id)
JOIN measured_value v ON v.device_id = s.source_id AND v.signal = 'energy_kwh.delta' AND v.quality = 0
                      AND v.time >= :start AND v.time < :end
LEFT JOIN LATERAL (
    SELECT c.state FROM state_change c
    WHERE c.device_id = s.machine_id AND c.time < v.time
    ORDER BY c.time DESC LIMIT 1
) AS st ON true
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: good-parts-per-day
-- Good parts per machine and local day (all day, not only planned time): the divisor of kWh per good part.
SELECT device_id, (time AT TIME ZONE :zone)::date AS day,
       sum(value) FILTER (WHERE signal = 'parts_good.delta') AS good,
       sum(value) FILTER (WHERE signal = 'parts_total.delta') AS total
FROM measured_value
WHERE device_id = ANY(:machine_ids) AND signal IN ('parts_good.delta', 'parts_total.delta') AND quality = 0
  AND time >= :start AND time < :end
GROUP BY 1, 2;

-- name: energy-of-customers
-- Per organization, the frozen energy of its completed bookings that start in [:start, :end), with the
-- bookings counted and those whose machine measures no energy left out of the sums.
SELECT b.organization_id, o.name AS organization_name,
       count(*) AS bookings,
       count(u.energy_kwh) AS measured_bookings,
       sum(u.energy_kwh) AS energy_kwh,
       sum(u.idle_energy_kwh) AS idle_energy_kwh,
       sum(u.parts_good) FILTER (WHERE u.energy_kwh IS NOT NULL) AS parts_good,
       sum(round(CAST(u.energy_kwh AS numeric) * u.carbon_factor, 2)) AS co2_kg,
       coalesce(array_agg(DISTINCT u.carbon_factor) FILTER (WHERE u.carbon_factor IS NOT NULL), '{}') AS carbon_factors
FROM booking_slot b
JOIN org_profile o ON o.id = b.organization_id
JOIN usage_record u ON u.booking_id = b.id
WHERE lower(b.during) >= :start AND lower(b.during) < :end AND b.status = 'completed'
  AND (CAST(:organization_id AS bigint) IS NULL OR b.organization_id = :organization_id)
GROUP BY b.organization_id, o.name
ORDER BY o.name, b.organization_id;

-- name: energy-reported$
-- Whether any source reported its energy counter in [:start, :end): a silent meter measured nothing (unknown),
-- a reporting one that counted no step measured zero.
SELECT EXISTS (
    SELECT 1 FROM measured_value
    WHERE device_id = ANY(:source_ids) AND signal = 'energy_kwh' AND time >= :start AND time < :end
);
