-- Private messages (CONTRACT §4 `private`): kept per recipient with their delivery state,
-- so a recipient with no connection gets each one exactly once on its next connect.
CREATE TABLE private_messages (
    recipient  TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    sender     TEXT    NOT NULL, -- the public user object, as JSON
    message    TEXT    NOT NULL, -- the content, as JSON
    created_at INTEGER NOT NULL,
    delivered  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (recipient, id)
);
CREATE INDEX private_messages_pending ON private_messages (recipient, delivered, id);

-- Notifications (CONTRACT §5 `notification`), with read and delivery state.
CREATE TABLE notifications (
    user_id    TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    title      TEXT    NOT NULL,
    content    TEXT    NOT NULL,
    priority   TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    is_read    INTEGER NOT NULL DEFAULT 0,
    delivered  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, id)
);
CREATE INDEX notifications_pending ON notifications (user_id, delivered, is_read, id);

-- The log of notifications to everyone (`/api/notify_all`).
CREATE TABLE global_notifications (
    id         TEXT    NOT NULL PRIMARY KEY,
    title      TEXT    NOT NULL,
    content    TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- Filtered-topic subscriptions, per user (CONTRACT §4 `subscribe`).
CREATE TABLE subscriptions (
    user_id TEXT NOT NULL,
    topic   TEXT NOT NULL,
    keys    TEXT NOT NULL, -- JSON array of strings
    PRIMARY KEY (user_id, topic)
);

-- Rooms created through the API with `persistent: true`: recreated at start.
CREATE TABLE rooms (
    name    TEXT NOT NULL PRIMARY KEY,
    options TEXT NOT NULL -- RoomOptions, as JSON
);
