-- name: insert-notification!
INSERT INTO notification (event_id, event_kind, channel, recipient, language, subject, body, attachment_name,
                          attachment_type, attachment, next_attempt_at, created_at)
VALUES (:event_id, :event_kind, :channel, :recipient, :language, :subject, :body, :attachment_name,
        :attachment_type, :attachment, :at, :at)
ON CONFLICT (event_id, channel, recipient) DO NOTHING;

-- name: claim-due
-- Due messages, locked for this sender; another process skips them rather than sending them twice.
SELECT id, event_id, event_kind, channel, recipient, webhook_id, language, subject, body, attachment_name,
       attachment_type, attachment, attempts
FROM notification
WHERE status = 'pending' AND next_attempt_at <= :now
ORDER BY next_attempt_at, id
LIMIT :limit
FOR UPDATE SKIP LOCKED;

-- name: mark-sent!
UPDATE notification SET status = 'sent', sent_at = :now, attempts = attempts + 1, last_error = NULL WHERE id = :id;

-- name: mark-unsent!
UPDATE notification
SET attempts = attempts + 1, last_error = :error, next_attempt_at = :retry_at,
    status = CASE WHEN :give_up THEN 'failed' ELSE 'pending' END
WHERE id = :id;

-- name: notification-counts
SELECT status, count(*) FROM notification GROUP BY status;

-- name: user-contact^
-- A user's address and choices (the defaults when the user chose nothing); none for an inactive user.
SELECT u.email, coalesce(p.email, true) AS email_on, coalesce(p.language, 'zh-CN') AS language,
       coalesce(p.reminder_minutes, '{1440,60}') AS reminder_minutes
FROM user_profile u LEFT JOIN notification_preference p ON p.user_id = u.id
WHERE u.id = :user_id AND u.active;

-- name: staff-contacts
-- Active staff of a role, with their choices.
SELECT u.id, u.email, coalesce(p.email, true) AS email_on, coalesce(p.language, 'zh-CN') AS language
FROM user_profile u LEFT JOIN notification_preference p ON p.user_id = u.id
WHERE u.role = :role AND u.active
ORDER BY u.id;

-- name: billing-contact^
SELECT contact_email FROM org_profile WHERE id = :organization_id AND active;

-- name: preference^
SELECT coalesce(p.email, true), coalesce(p.language, 'zh-CN'), coalesce(p.reminder_minutes, '{1440,60}')
FROM user_profile u LEFT JOIN notification_preference p ON p.user_id = u.id
WHERE u.id = :user_id;

-- name: put-preference!
INSERT INTO notification_preference (user_id, email, language, reminder_minutes, updated_at)
VALUES (:user_id, :email, :language, :reminder_minutes, now())
ON CONFLICT (user_id) DO UPDATE
SET email = EXCLUDED.email, language = EXCLUDED.language, reminder_minutes = EXCLUDED.reminder_minutes,
    updated_at = now();

-- name: reminders-due
-- Confirmed bookings starting within the longest reminder lead of their user, with the leads now due: a lead
-- is due once its moment has come and the booking already stood at its slot then (a booking made or moved 30
-- minutes ahead gets no 24-hour reminder). A moved booking's revision makes its reminders new ones.
SELECT b.id, b.user_id, lead, b.revision
FROM booking_slot b
JOIN user_profile u ON u.id = b.user_id
LEFT JOIN notification_preference p ON p.user_id = b.user_id
CROSS JOIN LATERAL unnest(coalesce(p.reminder_minutes, '{1440,60}')) AS lead
WHERE b.status = 'confirmed' AND lower(b.during) > :now AND lower(b.during) <= :now + interval '7 days'
  AND lower(b.during) - lead * interval '1 minute' <= :now
  AND lower(b.during) - lead * interval '1 minute' >= coalesce(b.changed_at, b.created_at);

-- name: qualifications-expiring
-- Active users' qualifications that end within :days days (not yet ended), with the class's names.
SELECT q.user_id, q.device_class, q.expires_on, coalesce(c.name, q.device_class) AS class_name,
       coalesce(c.name_zh, c.name, q.device_class) AS class_name_zh
FROM qualification_grant q
JOIN user_profile u ON u.id = q.user_id AND u.active
LEFT JOIN device_class_entry c ON c.id = q.device_class
WHERE q.expires_on >= CAST(:today AS date) AND q.expires_on <= CAST(:today AS date) + CAST(:days AS integer)
ORDER BY q.expires_on, q.user_id, q.device_class;

-- name: notification-rows
-- The delivery log, newest first: what was sent to whom, or why not yet. The body only in `notification-row`.
SELECT id, event_id, event_kind, channel, recipient, webhook_id, language, subject, attachment_name, status,
       attempts, next_attempt_at, last_error, created_at, sent_at, updated_at
FROM notification
WHERE (CAST(:status AS text) IS NULL OR status = :status)
  AND (CAST(:kind AS text) IS NULL OR event_kind = :kind)
  AND (CAST(:recipient AS text) IS NULL OR strpos(lower(recipient), lower(:recipient)) > 0)
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: notification-row^
SELECT id, event_id, event_kind, channel, recipient, webhook_id, language, subject, attachment_name, status,
       attempts, next_attempt_at, last_error, created_at, sent_at, updated_at, body
FROM notification WHERE id = :id;

-- name: resend-notification^
-- A message that ran out of attempts goes back in the queue with its attempts counted afresh.
UPDATE notification SET status = 'pending', attempts = 0, next_attempt_at = :now, last_error = NULL
WHERE id = :id AND status = 'failed'
RETURNING id;
