-- One message per event, channel and recipient (the unique key: an event expanded twice adds nothing),
-- rendered when the event is dispatched so the text is what was true then. Sent until delivered, with
-- backoff; `failed` after the last attempt, kept for the staff to see.
CREATE TABLE notification (
    id              bigserial PRIMARY KEY,
    event_id        bigint NOT NULL,
    event_kind      text NOT NULL,
    channel         text NOT NULL CHECK (channel IN ('email', 'robot')),
    recipient       text NOT NULL CHECK (length(recipient) BETWEEN 1 AND 320),
    language        text NOT NULL CHECK (language IN ('zh-CN', 'en')),
    subject         text NOT NULL,
    body            text NOT NULL,
    attachment_name text,
    attachment_type text,
    attachment      bytea,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    UNIQUE (event_id, channel, recipient)
);
CREATE INDEX notification_due_idx ON notification (next_attempt_at) WHERE status = 'pending';

-- A user's choices; a user without a row gets the defaults (email on, zh-CN, 24 h and 1 h before).
CREATE TABLE notification_preference (
    user_id           bigint PRIMARY KEY,
    email             boolean NOT NULL DEFAULT true,
    language          text NOT NULL DEFAULT 'zh-CN' CHECK (language IN ('zh-CN', 'en')),
    reminder_minutes  integer[] NOT NULL DEFAULT '{1440,60}'
        CHECK (cardinality(reminder_minutes) <= 5 AND 0 < ALL (reminder_minutes) AND 10080 >= ALL (reminder_minutes)),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
