-- A completed booking's results, frozen once it is over and its data is in (oee.results): per local day, the
-- times, parts and ideal cycle time the customer's OEE is computed from, exactly as computed then. Raw-sample
-- retention later drops the parts counters behind them; per-booking and per-customer OEE read these rows for
-- frozen bookings, so what a customer was shown never changes. Only an explicit, audited recompute rewrites
-- them (with the usage_record billing reads, frozen at the same moment).
CREATE TABLE booking_result (
    booking_id     bigint      NOT NULL REFERENCES booking (id),
    day            date        NOT NULL,            -- local day in the center's zone
    device_id      text        NOT NULL,
    during         tstzrange   NOT NULL,            -- the booking's slot on that day
    planned_s      double precision NOT NULL,       -- the customer's planned busy time: the slot
    booked_s       double precision NOT NULL,
    running_s      double precision NOT NULL,
    setup_s        double precision NOT NULL,
    idle_s         double precision NOT NULL,
    down_s         double precision NOT NULL,
    maintenance_s  double precision NOT NULL,
    offline_s      double precision NOT NULL,
    micro_stop_s   double precision NOT NULL,
    parts_total    double precision NOT NULL,
    parts_good     double precision,                -- null: the device does not count good parts
    ideal_cycle_s  double precision,                -- as configured when frozen; null: none configured
    computed_at    timestamptz NOT NULL,
    PRIMARY KEY (booking_id, day),
    CHECK (NOT isempty(during))
);
CREATE INDEX booking_result_device_day ON booking_result (device_id, day);
