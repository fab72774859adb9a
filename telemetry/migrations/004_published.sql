-- telemetry's published interface: the only telemetry relations another package's SQL may read (oee reads
-- them; DESIGN.md's package table says who may import telemetry). The tables behind them stay telemetry's
-- own and may change shape; these views keep their columns. Each is a plain view over one table, so
-- PostgreSQL's planner inlines it and a query through it gets the same plan (same index scans) as on the table.
-- published: state_change, measured_value

-- Device states: a state lasts until the next row of its device (offline: the gateway could not reach it).
CREATE VIEW state_change AS
SELECT time, device_id, state, quality FROM telemetry_state;

-- Numeric samples, including the counters' deltas (`parts_total.delta`, ...) and energy readings.
CREATE VIEW measured_value AS
SELECT time, device_id, signal, value, quality FROM telemetry_sample;
