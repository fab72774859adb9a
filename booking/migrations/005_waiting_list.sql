-- Waiting for a slot that is taken: a device or any device of a class, over a span. When the span frees, the
-- first waiter (by when they joined) is offered it until `offer_expires_at`, or booked at once if they chose
-- `auto_book`. An offer that lapses ends the entry, so the slot passes to the next waiter.
CREATE TABLE waiting_entry (
    id               bigserial PRIMARY KEY,
    organization_id  bigint NOT NULL,
    user_id          bigint NOT NULL,
    class_id         text NOT NULL,
    device_id        text,
    during           tstzrange NOT NULL CHECK (NOT isempty(during)),
    purpose          text NOT NULL DEFAULT '' CHECK (length(purpose) <= 500),
    auto_book        boolean NOT NULL,
    status           text NOT NULL DEFAULT 'waiting'
                     CHECK (status IN ('waiting', 'offered', 'booked', 'lapsed', 'expired', 'withdrawn')),
    offered_device   text,
    offer_expires_at timestamptz,
    booking_id       bigint REFERENCES booking (id),
    created_at       timestamptz NOT NULL
);
CREATE INDEX waiting_entry_open_idx ON waiting_entry (created_at, id) WHERE status IN ('waiting', 'offered');
SELECT track_updates('waiting_entry');
