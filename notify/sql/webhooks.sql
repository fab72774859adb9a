-- name: insert-webhook$
INSERT INTO webhook_endpoint (url, events, description, secret, created_by, created_at)
VALUES (:url, :events, :description, :secret, :created_by, :at)
RETURNING id;

-- name: webhooks
-- Endpoints without their secrets, newest first; one with :id, or every one.
SELECT id, url, events, description, created_by, created_at, disabled_at, disabled_by, updated_at
FROM webhook_endpoint
WHERE CAST(:id AS bigint) IS NULL OR id = :id
ORDER BY id DESC;

-- name: disable-webhook^
UPDATE webhook_endpoint SET disabled_at = :at, disabled_by = :by
WHERE id = :id AND disabled_at IS NULL
RETURNING id;

-- name: fail-webhook-deliveries!
-- A disabled endpoint's waiting deliveries are not tried again (a resend still may, and fails at once).
UPDATE notification SET status = 'failed', last_error = :error
WHERE webhook_id = :id AND status = 'pending';

-- name: subscribed-webhooks
-- The endpoints that hear of an event of :kind.
SELECT id, url FROM webhook_endpoint WHERE disabled_at IS NULL AND :kind = ANY (events) ORDER BY id;

-- name: insert-webhook-delivery!
INSERT INTO notification (event_id, event_kind, channel, recipient, webhook_id, language, subject, body,
                          next_attempt_at, created_at)
VALUES (:event_id, :event_kind, 'webhook', :url, :webhook_id, 'en', :event_kind, :body, :at, :at)
ON CONFLICT (event_id, channel, recipient) DO NOTHING;

-- name: webhook-secret^
SELECT secret, disabled_at FROM webhook_endpoint WHERE id = :id;
