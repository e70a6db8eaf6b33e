-- The PostgreSQL store's schema: the same tables as SQLite's migrations 0001-0004, in one
-- step (no PostgreSQL database predates ids assigned by the store, so nothing to seed).
--
-- Ids are numbers here: `seq` is the scope's sequence number (BIGINT), and the wire id is
-- formatted from it (`sequence_id`), so ranges and orders are integer ones.
--
-- Content a client sent (messages, sender objects, topic keys) is `JSON`, not `JSONB`:
-- it is stored and handed back, never queried inside (but for the sender's id, below),
-- and `JSON` keeps the exact text, including the `\u0000` escapes `JSONB` rejects. Room
-- options are the server's own structure: `JSONB`.

-- The last number handed out in each scope. An append bumps its scope's row in the same
-- statement that inserts the message; the row stays locked to commit, so ids follow
-- commit order (see the `Store` trait docs).
CREATE TABLE room_seq (
    room     TEXT   NOT NULL PRIMARY KEY,
    last_seq BIGINT NOT NULL
);
-- Private messages and notifications share their recipient's sequence.
CREATE TABLE user_seq (
    user_id  TEXT   NOT NULL PRIMARY KEY,
    last_seq BIGINT NOT NULL
);
-- Notifications to everyone: one row.
CREATE TABLE global_seq (
    one      BOOLEAN NOT NULL PRIMARY KEY CHECK (one),
    last_seq BIGINT  NOT NULL
);

-- Room chat history (CONTRACT §4 `history`, `join` with `since`): (room, seq) is both the
-- key and the history index.
CREATE TABLE chat_messages (
    room       TEXT   NOT NULL,
    seq        BIGINT NOT NULL,
    sender     JSON   NOT NULL, -- the public user object
    message    JSON   NOT NULL, -- the chat content
    created_at BIGINT NOT NULL, -- milliseconds since the epoch
    PRIMARY KEY (room, seq)
);

-- Private messages (CONTRACT §4 `private`), per recipient, with their delivery state. The
-- sender's id is generated from the sender object, so it can never disagree with it; it
-- makes the conversation of a and b the rows (recipient a, sender b) and (recipient b,
-- sender a), each one range of `private_messages_conversation`, read newest first.
CREATE TABLE private_messages (
    recipient  TEXT    NOT NULL,
    seq        BIGINT  NOT NULL,
    sender     JSON    NOT NULL,
    sender_id  TEXT    GENERATED ALWAYS AS (sender ->> 'userId') STORED,
    message    JSON    NOT NULL,
    created_at BIGINT  NOT NULL,
    delivered  BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (recipient, seq)
);
-- Partial: once delivered, a message leaves the index a connect reads.
CREATE INDEX private_messages_pending ON private_messages (recipient, seq) WHERE NOT delivered;
CREATE INDEX private_messages_conversation
    ON private_messages (recipient, sender_id, created_at, seq);

-- Notifications (CONTRACT §5 `notification`), with read and delivery state.
CREATE TABLE notifications (
    user_id    TEXT    NOT NULL,
    seq        BIGINT  NOT NULL,
    title      TEXT    NOT NULL,
    content    TEXT    NOT NULL,
    priority   TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    is_read    BOOLEAN NOT NULL DEFAULT false,
    delivered  BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (user_id, seq)
);
CREATE INDEX notifications_pending ON notifications (user_id, seq)
    WHERE NOT delivered AND NOT is_read;

-- The log of notifications to everyone (`/api/notify_all`).
CREATE TABLE global_notifications (
    seq        BIGINT NOT NULL PRIMARY KEY,
    title      TEXT   NOT NULL,
    content    TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- Filtered-topic subscriptions, per user (CONTRACT §4 `subscribe`).
CREATE TABLE subscriptions (
    user_id TEXT NOT NULL,
    topic   TEXT NOT NULL,
    keys    JSON NOT NULL, -- an array of strings
    PRIMARY KEY (user_id, topic)
);

-- Rooms created through the API with `persistent: true`: recreated at start.
CREATE TABLE rooms (
    name    TEXT  NOT NULL PRIMARY KEY,
    options JSONB NOT NULL -- RoomOptions
);
