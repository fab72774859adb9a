-- Bookings: creation, allocation, life cycle. Live bookings are those that hold their slot.

-- name: lock-for-booking$
-- One booking at a time per organization (its hour limit and subsidy caps), and neither a maintenance window
-- nor a change of opening hours appearing while this booking is decided (they take these locks exclusively).
SELECT count(*) FROM (
    SELECT pg_advisory_xact_lock(hashtext('fabhub.organization'), CAST(mod(:organization_id, 2147483647) AS integer))
    UNION ALL
    SELECT pg_advisory_xact_lock_shared(hashtext('fabhub.device'), hashtext(id))
    FROM unnest(CAST(:device_ids AS text[])) AS id
    UNION ALL
    -- Opening hours and closed days change under the same lock, taken exclusively.
    SELECT pg_advisory_xact_lock_shared(hashtext('fabhub.opening_hours'))
) AS locks;

-- name: booking-context^
-- Everything a booking decision needs, in one round trip. :exclude_id is the booking being changed: its own
-- slot, hours and subsidy do not stand in its way.
SELECT
    (SELECT expires_on FROM qualification_grant WHERE user_id = :user_id AND device_class = :class_id) AS qualified_until,
    (SELECT active FROM org_profile WHERE id = :organization_id) AS organization_active,
    (SELECT subsidy_programs FROM org_profile WHERE id = :organization_id) AS organization_programs,
    (SELECT reference_required FROM org_profile WHERE id = :organization_id) AS reference_required,
    (SELECT coalesce(sum(upper(b.during) - greatest(lower(b.during), CAST(:now AS timestamptz))), interval '0')
     FROM booking b JOIN device d ON d.id = b.device_id
     WHERE b.organization_id = :organization_id AND d.class_id = :class_id
       AND b.status IN ('confirmed', 'in_progress') AND upper(b.during) > :now
       AND b.id IS DISTINCT FROM CAST(:exclude_id AS bigint)) AS future_booked,
    used.programs AS used_programs,
    used.amounts AS used_amounts,
    (SELECT name FROM org_profile WHERE id = :organization_id) AS organization_name,
    booking_open_hours(:start, :end, :zone) @> tstzrange(:start, :end) AS within_opening_hours,
    (SELECT array_agg(m.device_id) FROM maintenance_window m
     WHERE m.device_id = ANY(:device_ids) AND m.cancelled_at IS NULL
       AND m.during && tstzrange(:start, :end)) AS under_maintenance,
    -- Free devices, the least booked that day first, ties broken at random so that concurrent class
    -- requests spread over the devices instead of queueing on the first.
    (SELECT array_agg(d.id ORDER BY (
                SELECT coalesce(sum(upper(b.during) - lower(b.during)), interval '0') FROM booking b
                WHERE b.device_id = d.id AND b.status IN ('confirmed', 'in_progress', 'completed')
                  AND b.during && tstzrange(:day_start, :day_end)), random())
     FROM device d
     WHERE d.id = ANY(:device_ids) AND d.retired_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM booking b WHERE b.device_id = d.id
                       AND b.status IN ('confirmed', 'in_progress', 'completed')
                       AND b.during && tstzrange(:start, :end) AND b.id IS DISTINCT FROM CAST(:exclude_id AS bigint))
       AND NOT EXISTS (SELECT 1 FROM maintenance_window m WHERE m.device_id = d.id AND m.cancelled_at IS NULL
                       AND m.during && tstzrange(:start, :end))) AS candidates
FROM (
    -- Subsidy already promised this calendar year, per program.
    SELECT array_agg(subsidy_program ORDER BY subsidy_program) AS programs, array_agg(subsidy ORDER BY subsidy_program) AS amounts
    FROM booking
    WHERE organization_id = :organization_id AND subsidy_program IS NOT NULL
      AND status IN ('confirmed', 'in_progress', 'completed')
      AND lower(during) >= :year_start AND lower(during) < :year_end
      AND id IS DISTINCT FROM CAST(:exclude_id AS bigint)
) AS used;

-- name: insert-booking^
INSERT INTO booking (
    device_id, organization_id, user_id, created_by, during, purpose, hourly_rate, gross, subsidy_program,
    subsidy_share, subsidy, net, override_reason, created_at, reference)
VALUES (
    :device_id, :organization_id, :user_id, :created_by, tstzrange(:start, :end), :purpose, :hourly_rate, :gross,
    :subsidy_program, :subsidy_share, :subsidy, :net, :override_reason, :now, :reference)
RETURNING id, device_id, CAST(:class_id AS text) AS class_id, CAST(:device_name AS text) AS device_name,
    organization_id, CAST(:organization_name AS text) AS organization_name, user_id, created_by,
    lower(during) AS start, upper(during) AS "end", status, purpose, hourly_rate, gross, subsidy_program,
    subsidy_share, subsidy, net, override_reason, created_at, checked_in_at, finished_at, cancelled_at,
    cancelled_by, late_cancellation, fee, updated_at, series_id, reference, revision, changed_at, booked_end;

-- name: change-booking^
-- A confirmed booking moved and priced anew; the no-overlap constraint decides the new slot as it does a new one.
UPDATE booking
SET device_id = :device_id, during = tstzrange(:start, :end), purpose = :purpose, reference = :reference,
    hourly_rate = :hourly_rate, gross = :gross, subsidy_program = :subsidy_program, subsidy_share = :subsidy_share,
    subsidy = :subsidy, net = :net, override_reason = coalesce(:override_reason, override_reason),
    revision = revision + 1, changed_at = :now
WHERE id = :id
RETURNING id;

-- name: relabel-booking!
-- A new purpose or reference only: the slot and the price stay.
UPDATE booking SET purpose = :purpose, reference = :reference, revision = revision + 1, changed_at = :now
WHERE id = :id;

-- name: booking-row^
SELECT * FROM booking_detail
WHERE id = :id AND (CAST(:organization_id AS bigint) IS NULL OR organization_id = :organization_id);

-- name: booking-rows
SELECT * FROM booking_detail
WHERE start < :end AND "end" > :start
  AND (CAST(:organization_id AS bigint) IS NULL OR organization_id = :organization_id)
  AND (CAST(:device_id AS text) IS NULL OR device_id = :device_id)
  AND (CAST(:class_id AS text) IS NULL OR class_id = :class_id)
  AND (CAST(:status AS text) IS NULL OR status = :status)
ORDER BY start, id
LIMIT :limit;

-- name: lock-booking^
-- With the class's cancellation rules as synced (a class that left devices.yaml keeps its last ones).
SELECT b.status, lower(b.during) AS start, upper(b.during) AS "end", b.net, d.class_id,
       dc.late_cancellation, dc.late_cancellation_fee_share, dc.granularity, dc.billing_basis,
       dc.metered_minimum_share, o.reference_required
FROM booking b JOIN device d ON d.id = b.device_id JOIN device_class dc ON dc.id = d.class_id
JOIN org_profile o ON o.id = b.organization_id
WHERE b.id = :id AND (CAST(:organization_id AS bigint) IS NULL OR b.organization_id = :organization_id)
FOR NO KEY UPDATE OF b;

-- name: cancel-booking!
UPDATE booking
SET status = 'cancelled', cancelled_at = :now, cancelled_by = :by, late_cancellation = :late, fee = :fee
WHERE id = :id;

-- name: check-in-booking!
UPDATE booking SET status = 'in_progress', checked_in_at = :now WHERE id = :id;

-- name: finish-booking!
-- Ended at :now: a slot cut at :end (before its booked end) frees the rest, keeps its booked end for billing,
-- and counts as a change (a subscribed calendar shortens the event).
UPDATE booking
SET status = 'completed', finished_at = :now,
    booked_end = CASE WHEN :end < upper(during) THEN upper(during) END,
    during = tstzrange(lower(during), least(upper(during), :end)),
    revision = revision + CASE WHEN :end < upper(during) THEN 1 ELSE 0 END,
    changed_at = CASE WHEN :end < upper(during) THEN :now ELSE changed_at END
WHERE id = :id;

-- name: booked-for^
-- The customer a staff member books for.
SELECT organization_id, role, active FROM user_profile WHERE id = :id;

-- name: held-spans
-- The time an organization holds each device inside [:start, :end): its bookings in the statuses that hold
-- their slot (those of the no-overlap constraint, so two organizations' spans never overlap; a no-show's
-- slot may be booked again, a cancelled one is free), clipped to the window, half-open like `during`.
SELECT device_id, greatest(lower(during), :start) AS start, least(upper(during), :end) AS "end"
FROM booking
WHERE organization_id = :organization_id AND device_id = ANY(:device_ids)
  AND status IN ('confirmed', 'in_progress', 'completed') AND during && tstzrange(:start, :end)
ORDER BY device_id, lower(during);

-- name: insert-series$
INSERT INTO booking_series (organization_id, user_id, created_by, rule, created_at)
VALUES (:organization_id, :user_id, :created_by, :rule, :now)
RETURNING id;

-- name: join-series!
UPDATE booking SET series_id = :series_id WHERE id = :id;

-- name: series-row^
SELECT id, organization_id, rule FROM booking_series WHERE id = :id;

-- name: series-bookings
SELECT * FROM booking_detail WHERE series_id = :series_id ORDER BY start, id;
