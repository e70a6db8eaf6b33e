-- Room chat history (CONTRACT §4 `history`, `join` with `since`). Ids sort in acceptance
-- order within a room, so (room, id) is both the key and the history index.
CREATE TABLE chat_messages (
    room       TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    sender     TEXT    NOT NULL, -- the public user object, as JSON
    message    TEXT    NOT NULL, -- the chat content, as JSON
    created_at INTEGER NOT NULL, -- milliseconds since the epoch
    PRIMARY KEY (room, id)
);
