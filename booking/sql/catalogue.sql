-- The catalogue, written only by the devices.yaml sync.

-- name: lock-catalogue$
-- Two processes starting together sync one after the other.
SELECT pg_advisory_xact_lock(hashtext('fabhub.catalogue'));

-- name: class-rows
SELECT * FROM device_class;

-- name: device-rows
SELECT * FROM device;

-- name: program-rows
SELECT * FROM subsidy_program;

-- name: upsert-class!
INSERT INTO device_class (
    id, name, name_zh, hourly_rate, billing_basis, metered_minimum_share, min_booking, max_booking, granularity,
    horizon_days, max_future_hours_per_org, late_cancellation, no_show_after, late_cancellation_fee_share,
    no_show_fee_share, retired_at)
VALUES (
    :id, :name, :name_zh, :hourly_rate, :billing_basis, :metered_minimum_share, :min_booking, :max_booking,
    :granularity, :horizon_days, :max_future_hours_per_org, :late_cancellation, :no_show_after,
    :late_cancellation_fee_share, :no_show_fee_share, :retired_at)
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, name_zh = EXCLUDED.name_zh, hourly_rate = EXCLUDED.hourly_rate,
    billing_basis = EXCLUDED.billing_basis, metered_minimum_share = EXCLUDED.metered_minimum_share,
    min_booking = EXCLUDED.min_booking, max_booking = EXCLUDED.max_booking, granularity = EXCLUDED.granularity,
    horizon_days = EXCLUDED.horizon_days, max_future_hours_per_org = EXCLUDED.max_future_hours_per_org,
    late_cancellation = EXCLUDED.late_cancellation, no_show_after = EXCLUDED.no_show_after,
    late_cancellation_fee_share = EXCLUDED.late_cancellation_fee_share,
    no_show_fee_share = EXCLUDED.no_show_fee_share, retired_at = EXCLUDED.retired_at;

-- name: retire-class!
UPDATE device_class SET retired_at = :at WHERE id = :id;

-- name: upsert-device!
INSERT INTO device (id, class_id, name, hourly_rate, retired_at)
VALUES (:id, :class_id, :name, :hourly_rate, :retired_at)
ON CONFLICT (id) DO UPDATE SET
    class_id = EXCLUDED.class_id, name = EXCLUDED.name, hourly_rate = EXCLUDED.hourly_rate,
    retired_at = EXCLUDED.retired_at;

-- name: retire-device!
UPDATE device SET retired_at = :at WHERE id = :id;

-- name: upsert-program!
INSERT INTO subsidy_program (id, name, share, classes, valid_from, valid_to, annual_cap, retired_at)
VALUES (:id, :name, :share, :classes, :valid_from, :valid_to, :annual_cap, :retired_at)
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, share = EXCLUDED.share, classes = EXCLUDED.classes, valid_from = EXCLUDED.valid_from,
    valid_to = EXCLUDED.valid_to, annual_cap = EXCLUDED.annual_cap, retired_at = EXCLUDED.retired_at;

-- name: retire-program!
UPDATE subsidy_program SET retired_at = :at WHERE id = :id;
