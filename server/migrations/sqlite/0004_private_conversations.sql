-- Private conversations read back (CONTRACT §4 `private_history`): the messages between
-- two users, both directions. The conversation of a and b is the rows (recipient a,
-- sender b) and (recipient b, sender a), but the sender was only inside its JSON: its id
-- becomes a column, generated from that JSON, so it can never disagree with it and needs
-- no backfill (every row the server wrote has `userId` in `sender`).
ALTER TABLE private_messages
    ADD COLUMN sender_id TEXT GENERATED ALWAYS AS (json_extract(sender, '$.userId')) VIRTUAL;

-- A conversation's order is (created_at, recipient, id); each direction has one recipient,
-- so each is one range of this index, read newest first: a page costs two range scans of
-- at most `limit` entries wherever it is in the conversation, never a sort of all of it.
CREATE INDEX private_messages_conversation
    ON private_messages (recipient, sender_id, created_at, id);
