-- Message ids assigned by the store: the last number handed out in each scope. An append
-- bumps its scope's row and inserts the message in one transaction, so ids follow commit
-- order (see the `Store` trait docs).
CREATE TABLE room_seq (
    room     TEXT    NOT NULL PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
-- Private messages and notifications share their recipient's sequence.
CREATE TABLE user_seq (
    user_id  TEXT    NOT NULL PRIMARY KEY,
    last_seq INTEGER NOT NULL
);
-- Notifications to everyone: one row.
CREATE TABLE global_seq (
    only     INTEGER NOT NULL PRIMARY KEY CHECK (only = 1),
    last_seq INTEGER NOT NULL
);

-- Seeding from the ids already stored, the per-node `(ms << 12) + seq` ones: each scope
-- continues above its newest id, so new ids sort after old ones as strings. The server
-- ordered by `id` as text, so MAX(id) is the newest by its own ordering; only that one
-- needs converting, and it must be 16 lowercase hex digits fitting an i64 (as every id the
-- server wrote was) for the new ids (16 hex digits) to sort after it. Anything else fails
-- the migration, naming the constraint, rather than silently misordering.
CREATE TEMP TABLE newest_ids (
    scope TEXT NOT NULL,
    key   TEXT NOT NULL,
    id    TEXT NOT NULL
        CONSTRAINT newest_id_is_16_lowercase_hex_digits_below_8000000000000000
        CHECK (length(id) = 16 AND id NOT GLOB '*[^0-9a-f]*' AND substr(id, 1, 1) <= '7')
);
INSERT INTO newest_ids (scope, key, id)
    SELECT 'room', room, MAX(id) FROM chat_messages GROUP BY room;
INSERT INTO newest_ids (scope, key, id)
    SELECT 'user', recipient, MAX(id) FROM (
        SELECT recipient, id FROM private_messages
        UNION ALL
        SELECT user_id, id FROM notifications
    ) GROUP BY recipient;
INSERT INTO newest_ids (scope, key, id)
    SELECT 'global', '', id FROM (SELECT MAX(id) AS id FROM global_notifications)
    WHERE id IS NOT NULL;

-- SQLite has no hex-to-integer function (CAST ignores hex): fold the digits, one per
-- step, left to right. The CHECK above keeps every step an exact integer.
CREATE TEMP TABLE seeds AS
    WITH RECURSIVE digits (scope, key, rest, value) AS (
        SELECT scope, key, id, 0 FROM newest_ids
        UNION ALL
        SELECT scope, key, substr(rest, 2),
               value * 16 + (instr('0123456789abcdef', substr(rest, 1, 1)) - 1)
        FROM digits WHERE rest <> ''
    )
    SELECT scope, key, value FROM digits WHERE rest = '';

INSERT INTO room_seq (room, last_seq) SELECT key, value FROM seeds WHERE scope = 'room';
INSERT INTO user_seq (user_id, last_seq) SELECT key, value FROM seeds WHERE scope = 'user';
INSERT INTO global_seq (only, last_seq) SELECT 1, value FROM seeds WHERE scope = 'global';

DROP TABLE seeds;
DROP TABLE newest_ids;
