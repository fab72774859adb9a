-- Events written in the transaction of the change that caused them. `key` makes publishing idempotent for
-- events found by a job rather than caused by a request (a reminder, a machine going down): the second run
-- publishes nothing.
CREATE TABLE outbox_event (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind ~ '^[a-z_]+\.[a-z_]+$'),
    key           text UNIQUE,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL,
    dispatched_at timestamptz
);
CREATE INDEX outbox_event_waiting_idx ON outbox_event (id) WHERE dispatched_at IS NULL;
