-- A completed booking's machine report (oee.snapshot freezes, oee.report reads).

-- name: report-states
-- The device's state rows from the last one at or before :start (the state the slot begins in) up to :end.
SELECT time, state FROM state_change
WHERE device_id = :device_id AND time < :end
  AND time >= coalesce((SELECT max(time) FROM state_change WHERE device_id = :device_id AND time <= :start), :start)
ORDER BY time;

-- name: report-parts
-- The part counter's deltas inside the slot (good quality only, as the OEE counts them).
SELECT time, value FROM measured_value
WHERE device_id = :device_id AND signal = 'parts_total.delta' AND quality = 0 AND time >= :start AND time < :end
ORDER BY time;

-- name: report-texts
-- The program and alarm texts inside the slot, each signal's last one before it first (what was on at :start).
SELECT t.signal, t.time, t.value
FROM unnest(CAST(ARRAY['program', 'alarm'] AS text[])) AS s (signal)
CROSS JOIN LATERAL (
    (SELECT time, signal, value FROM text_value
     WHERE device_id = :device_id AND signal = s.signal AND time < :start AND quality = 0
     ORDER BY time DESC LIMIT 1)
    UNION ALL
    (SELECT time, signal, value FROM text_value
     WHERE device_id = :device_id AND signal = s.signal AND time >= :start AND time < :end AND quality = 0
     ORDER BY time)
) AS t
ORDER BY t.signal, t.time;

-- name: store-booking-report!
INSERT INTO booking_report (booking_id, computed_at, timeline, cycles, programs, alarms, downtime)
VALUES (:booking_id, :computed_at, :timeline, :cycles, :programs, :alarms, :downtime);

-- name: report-bookings
-- The bookings a report or comparison shows, with what it needs around the frozen figures: the device, its
-- class's billing basis, the organization, the usage record (energy included) and the snapshot. A booking
-- whose results are not frozen has no usage or snapshot here (`frozen` false).
SELECT b.id, b.organization_id, o.name AS organization_name, b.device_id, d.name AS device_name, d.class_id,
       c.name AS class_name, c.name_zh AS class_name_zh, lower(b.during) AS start, upper(b.during) AS "end",
       b.status, b.reference, b.hourly_rate, b.gross, b.subsidy_program, b.subsidy_share, b.subsidy, b.net,
       c.billing_basis, c.metered_minimum_share,
       EXISTS (SELECT 1 FROM booking_result r WHERE r.booking_id = b.id) AND u.booking_id IS NOT NULL AS frozen,
       u.booked_s, u.running_s, u.overrun_s, u.energy_kwh, u.idle_energy_kwh, u.carbon_factor, u.carbon_source,
       u.carbon_year, u.computed_at AS frozen_at,
       s.computed_at AS snapshot_at, s.timeline, s.cycles, s.programs, s.alarms, s.downtime
FROM booking_slot b
JOIN org_profile o ON o.id = b.organization_id
JOIN device_entry d ON d.id = b.device_id
JOIN device_class_entry c ON c.id = d.class_id
LEFT JOIN usage_record u ON u.booking_id = b.id
LEFT JOIN booking_report s ON s.booking_id = b.id
WHERE b.id = ANY(:ids);

-- name: report-results
-- The frozen per-day rows of the bookings, the OEE's inputs.
SELECT booking_id, planned_s, booked_s, running_s, setup_s, idle_s, down_s, maintenance_s, offline_s, micro_stop_s,
       parts_total, parts_good, ideal_cycle_s
FROM booking_result WHERE booking_id = ANY(:ids)
ORDER BY booking_id, day;

-- name: report-billed-lines
-- What the bookings were billed: the lines of issued invoices that no credit note cancelled.
SELECT l.id, l.position, l.booking_id, l.kind, l.description, l.quantity, l.unit, l.unit_price, l.amount,
       l.subsidy_program, b.reference, i.number AS invoice_number
FROM invoice_line l JOIN invoice i ON i.id = l.invoice_id LEFT JOIN booking_slot b ON b.id = l.booking_id
WHERE l.booking_id = ANY(:ids) AND i.kind = 'invoice' AND i.status = 'issued' AND i.credited_by IS NULL
ORDER BY l.booking_id, l.position;

-- name: report-reasons
-- The reasons technicians attached to down intervals of the devices, by the intervals' starts: read when the
-- report is shown, so an explanation given after the booking completed is in it.
SELECT r.device_id, r.start, r.code, c.name, c.name_zh, r.note
FROM downtime_reason r JOIN downtime_reason_code c USING (code)
WHERE r.device_id = ANY(:device_ids) AND r.start = ANY(:starts);
