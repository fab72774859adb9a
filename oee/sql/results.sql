-- Frozen booking results (oee.results): a completed booking's per-day OEE rows and its usage record, written
-- once when the booking is over and its data is in, rewritten only by an audited recompute.

-- name: lock-booking-result$
-- One freeze or recompute of a booking at a time (the lifecycle job, an invoice draft, finance).
SELECT pg_advisory_xact_lock(hashtext('fabhub.booking_result'), CAST(mod(:booking_id, 2147483647) AS integer));

-- name: result-booking^
SELECT id, device_id, organization_id, lower(during) AS start, upper(during) AS "end", status, booked_end
FROM booking_slot WHERE id = :id;

-- name: results-due
-- Completed bookings without frozen results whose slot ended before :ended_before (after :since: older ones
-- are past raw retention, freezing them would keep nothing the live figures do not show), oldest first.
SELECT b.id, b.device_id, b.organization_id, lower(b.during) AS start, upper(b.during) AS "end", b.status,
       b.booked_end
FROM booking_slot b
WHERE b.status = 'completed' AND upper(b.during) <= :ended_before AND upper(b.during) > :since
  AND NOT EXISTS (SELECT 1 FROM booking_result r WHERE r.booking_id = b.id)
ORDER BY upper(b.during), b.id
LIMIT :limit;

-- name: result-frozen$
SELECT EXISTS (SELECT 1 FROM booking_result WHERE booking_id = :booking_id);

-- name: store-result!
INSERT INTO booking_result (
    booking_id, day, device_id, during, planned_s, booked_s, running_s, setup_s, idle_s, down_s, maintenance_s,
    offline_s, micro_stop_s, parts_total, parts_good, ideal_cycle_s, computed_at)
VALUES (
    :booking_id, :day, :device_id, tstzrange(:start, :end), :planned_s, :booked_s, :running_s, :setup_s, :idle_s,
    :down_s, :maintenance_s, :offline_s, :micro_stop_s, :parts_total, :parts_good, :ideal_cycle_s, :computed_at);

-- name: delete-results!
-- The per-day rows and the report's snapshot (oee.snapshot), which are frozen together.
WITH report AS (DELETE FROM booking_report WHERE booking_id = :booking_id)
DELETE FROM booking_result WHERE booking_id = :booking_id;

-- name: usage-of-booking^
SELECT booking_id, booked_s, running_s, setup_s, overrun_s, offline_s, parts_total, parts_good, energy_kwh,
       idle_energy_kwh, carbon_factor, carbon_source, carbon_year, computed_at
FROM usage_record WHERE booking_id = :booking_id;

-- name: issued-invoice-of-booking$
-- The number of the issued invoice that bills the booking and is not credited, if any.
SELECT i.number FROM invoice i JOIN invoice_line l ON l.invoice_id = i.id
WHERE l.booking_id = :booking_id AND i.kind = 'invoice' AND i.status = 'issued' AND i.credited_by IS NULL
LIMIT 1;

-- name: frozen-days
-- A customer's frozen per-day rows on the devices whose slot piece lies wholly inside [:start, :end). The
-- planned time computed live leaves exactly these pieces out (customer-planned-time), so nothing counts twice.
SELECT r.device_id, r.day, r.planned_s, r.booked_s, r.running_s, r.setup_s, r.idle_s, r.down_s, r.maintenance_s,
       r.offline_s, r.micro_stop_s, r.parts_total, r.parts_good, r.ideal_cycle_s
FROM booking_result r
JOIN booking_slot b ON b.id = r.booking_id
WHERE b.organization_id = :organization_id AND r.device_id = ANY(:device_ids)
  AND r.day BETWEEN CAST(:first_day AS date) AND CAST(:last_day AS date)  -- the index; the pieces decide
  AND r.during <@ tstzrange(:start, :end)
ORDER BY r.device_id, r.day, r.booking_id;

-- name: oldest-raw-sample$
-- The oldest raw numeric sample left: retention drops raw samples oldest first, so a booking that started
-- before it has lost some (its parts and energy counters) and cannot be recomputed from raw data any more.
SELECT min(time) FROM measured_value;
