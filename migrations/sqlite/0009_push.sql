-- Offer delivery beyond the WebSocket: each rescuer's Web Push subscriptions (personal data:
-- removed with the rescuer, never public) and one delivery record per message and channel.
CREATE TABLE push_subscriptions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    rescuer_id  INTEGER NOT NULL REFERENCES rescuers (id) ON DELETE CASCADE,
    endpoint    TEXT NOT NULL UNIQUE,
    p256dh      TEXT NOT NULL,
    auth        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX push_subscriptions_rescuer ON push_subscriptions (rescuer_id);

CREATE TABLE deliveries (
    incident_id INTEGER NOT NULL,
    rescuer_id  INTEGER NOT NULL,
    message     TEXT NOT NULL CHECK (message IN ('offer', 'stand_down', 'cancel')),
    -- 0 for stand_down and cancel (they are per incident).
    offer_id    INTEGER NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('ws', 'web_push', 'webhook')),
    state       TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'delivered', 'failed')),
    reason      TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (incident_id, rescuer_id, message, offer_id, channel)
);
