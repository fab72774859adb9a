-- Text samples join telemetry's published interface (see 004): a booking's machine report (oee) reads the
-- programs run and the alarms raised inside the slot. A plain view over one table, as the others.
-- published: text_value

-- Text samples: the program name (`program`), the active alarm's text (`alarm`, empty once cleared), ...
CREATE VIEW text_value AS
SELECT time, device_id, signal, value, quality FROM telemetry_text_sample;
