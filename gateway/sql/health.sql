-- Device health (gateway/health.py).

-- name: report-health!
-- One gateway's round, in one statement: its heartbeat and figures, and each of its devices. A round older
-- than the stored one changes nothing: rounds through the central broker may arrive late, twice, or out of
-- order (two ingest workers), and the latest must win.
WITH reporter AS (
    INSERT INTO gateway_report (gateway_id, site, heartbeat, spool_depth, spool_dropped, writer_pending)
    VALUES (:gateway_id, :site, :heartbeat, :spool_depth, :spool_dropped, :writer_pending)
    ON CONFLICT (gateway_id) DO UPDATE
    SET site = excluded.site, heartbeat = excluded.heartbeat, spool_depth = excluded.spool_depth,
        spool_dropped = excluded.spool_dropped, writer_pending = excluded.writer_pending
    WHERE gateway_report.heartbeat <= excluded.heartbeat
)
INSERT INTO device_health AS h (device_id, protocol, gateway_id, site, connection, state, since, last_sample,
                                last_error, samples, quarantined, reconnects, errors, heartbeat)
SELECT d.device_id, d.protocol, :gateway_id, :site, d.connection, d.state, d.since, d.last_sample,
       d.last_error, d.samples, d.quarantined, d.reconnects, d.errors, :heartbeat
FROM jsonb_to_recordset(CAST(:devices AS jsonb)) AS d(
    device_id text, protocol text, connection text, state text, since timestamptz, last_sample timestamptz,
    last_error text, samples bigint, quarantined bigint, reconnects bigint, errors jsonb
)
ON CONFLICT (device_id) DO UPDATE
SET protocol = excluded.protocol, gateway_id = excluded.gateway_id, site = excluded.site,
    connection = excluded.connection, state = excluded.state, since = excluded.since,
    last_sample = excluded.last_sample, last_error = excluded.last_error, samples = excluded.samples,
    quarantined = excluded.quarantined, reconnects = excluded.reconnects, errors = excluded.errors,
    heartbeat = excluded.heartbeat
WHERE h.heartbeat <= excluded.heartbeat;

-- name: device-health
-- `fresh`: whether its gateway reported since :fresh_after; a device no gateway reported has no row.
SELECT device_id, protocol, connection, state, since, last_sample, last_error, samples, quarantined,
       reconnects, errors, heartbeat, heartbeat >= :fresh_after AS fresh
FROM device_health
WHERE device_id = ANY(CAST(:devices AS text[]));

-- name: gateway-figures^
-- The spool and writer of the gateways reporting now.
SELECT CAST(coalesce(sum(spool_depth), 0) AS bigint) AS spool_depth,
       CAST(coalesce(sum(spool_dropped), 0) AS bigint) AS spool_dropped,
       CAST(coalesce(sum(writer_pending), 0) AS bigint) AS writer_pending
FROM gateway_report
WHERE heartbeat >= :fresh_after;
