-- Recurring bookings: the series a booking was made in (its rule as the customer gave it), for reading the
-- series back and cancelling the rest of it.
CREATE TABLE booking_series (
    id              bigserial PRIMARY KEY,
    organization_id bigint NOT NULL,
    user_id         bigint NOT NULL,
    created_by      bigint NOT NULL,
    rule            text NOT NULL CHECK (length(rule) <= 200),
    created_at      timestamptz NOT NULL
);
ALTER TABLE booking ADD COLUMN series_id bigint REFERENCES booking_series (id);
CREATE INDEX booking_series_idx ON booking (series_id) WHERE series_id IS NOT NULL;

CREATE OR REPLACE VIEW booking_detail AS
SELECT b.id, b.device_id, d.class_id, d.name AS device_name, b.organization_id, o.name AS organization_name,
       b.user_id, b.created_by, lower(b.during) AS start, upper(b.during) AS "end", b.status, b.purpose,
       b.hourly_rate, b.gross, b.subsidy_program, b.subsidy_share, b.subsidy, b.net, b.override_reason,
       b.created_at, b.checked_in_at, b.finished_at, b.cancelled_at, b.cancelled_by, b.late_cancellation, b.fee,
       b.updated_at, b.series_id
FROM booking b
JOIN device d ON d.id = b.device_id
JOIN org_profile o ON o.id = b.organization_id;
