-- Device health, written by the gateways, read by every app process (`/api/v1/devices`): nothing another
-- process needs lives only in the gateway's memory. Each gateway upserts its rows every round; a row whose
-- heartbeat is older than a few rounds reads as `unknown` (computed when read, never rewritten), so a
-- gateway that died needs no one to mark its devices.

-- One row per gateway process: its last heartbeat and its own store-and-forward figures.
CREATE TABLE gateway_report (
    gateway_id     text        PRIMARY KEY,  -- FABHUB_GATEWAY_ID, else host:pid
    site           text,
    heartbeat      timestamptz NOT NULL,
    spool_depth    bigint      NOT NULL,
    spool_dropped  bigint      NOT NULL,
    writer_pending bigint      NOT NULL
);

-- One row per device, from the gateway that last reported it.
CREATE TABLE device_health (
    device_id   text        PRIMARY KEY,
    protocol    text        NOT NULL,
    gateway_id  text        NOT NULL,
    site        text,
    connection  text        NOT NULL CHECK (connection IN ('connecting', 'online', 'offline')),
    state       text,
    since       timestamptz,
    last_sample timestamptz,
    last_error  text,
    samples     bigint      NOT NULL,
    quarantined bigint      NOT NULL,
    reconnects  bigint      NOT NULL,
    errors      jsonb       NOT NULL,  -- {"what went wrong": times}
    heartbeat   timestamptz NOT NULL
);
