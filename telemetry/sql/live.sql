-- Live values across processes (telemetry/live.py). The channel is telemetry.live.CHANNEL.

-- name: notify-live!
-- Delivered to every listener when the writer's transaction commits, and not at all if it rolls back.
SELECT pg_notify('fabhub_live', payload) FROM unnest(CAST(:payloads AS text[])) AS p(payload);

-- name: listen-live!
LISTEN fabhub_live;

-- name: ping!
SELECT 1;
