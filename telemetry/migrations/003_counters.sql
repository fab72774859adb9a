-- The baseline of each cumulative counter: its last raw value counted, written in the transaction that
-- stores the deltas it produced (telemetry.counters), so a crash can neither lose nor repeat a part.
-- numeric(20,0): a uint64 counter does not fit a bigint.
CREATE TABLE telemetry_counter (
    device_id text          NOT NULL,
    signal    text          NOT NULL,
    raw       numeric(20,0) NOT NULL CHECK (raw >= 0),
    time      timestamptz   NOT NULL,
    epoch     text,
    PRIMARY KEY (device_id, signal)
);
