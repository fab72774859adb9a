-- The raw-derived parts of a completed booking's machine report (oee.snapshot), frozen with its usage and
-- per-day results in the same transaction (oee.results): the state timeline, the cycle times, the programs
-- run, the alarms and the down intervals inside the slot. Raw-sample retention later drops what they were
-- computed from; the report reads these, so it never changes after the fact. Rewritten only with the
-- booking's results by the audited recompute. Times inside the JSON are ISO 8601 UTC.
CREATE TABLE booking_report (
    booking_id  bigint      PRIMARY KEY REFERENCES booking (id),
    computed_at timestamptz NOT NULL,
    timeline    jsonb       NOT NULL,  -- [{state, start, end}] clipped to the slot, repeats merged
    cycles      jsonb       NOT NULL,  -- [{at, seconds, parts}]: a counter sample's parts and each one's cycle
    programs    jsonb       NOT NULL,  -- [{name, running_s, parts, runs}]
    alarms      jsonb       NOT NULL,  -- [{at, text, until}]
    downtime    jsonb       NOT NULL   -- [{start, end, seconds}]: whole down intervals, seconds inside the slot
);
