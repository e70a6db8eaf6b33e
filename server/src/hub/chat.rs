//! Room chat: a member's message is stored first (the store assigns its id), then
//! published to the room; history and the replay of a `join` with `since` read the
//! store. The room's cursor orders both paths (live chats by their number, a joiner's
//! replay by holding it), so a joiner meets live traffic with nothing missing or doubled.

use roomcast_protocol::{ErrorCode, MessageId, RoomName, ServerMessage, Timestamp};
use serde_json::Value;
use tracing::warn;

use super::repair::sequence_of;
use super::{ConnHandle, Hub, frame};
use crate::ServerError;
use crate::broker::{Delivery, Target};
use crate::clock::now_ms;
use crate::model::check_content;
use crate::store::{NewChat, StoredChat, sequence_id};

/// `history` answers this many messages unless asked otherwise.
const DEFAULT_HISTORY: u32 = 50;
/// `history` answers at most this many messages.
const MAX_HISTORY: u32 = 500;
/// Longest a chat's reply waits for the chat's delivery on this node.
const REPLY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);
/// The position of a room with no stored chat.
const EMPTY_ROOM: &str = "0000000000000000";

/// A stored chat as the `chat` message members receive.
pub(super) fn chat_message(chat: StoredChat) -> ServerMessage {
    ServerMessage::Chat {
        id: chat.id,
        room: chat.room,
        from: chat.from,
        message: chat.message,
        timestamp: chat.timestamp,
    }
}

impl Hub {
    /// Accepts a chat message from a member and delivers it to every member, the sender
    /// included.
    ///
    /// # Errors
    /// `too_large` when `content` is over the limit, `not_member` when the sender is not
    /// in the room; store and broker failures.
    pub async fn chat(
        &self,
        conn: &ConnHandle,
        room: &RoomName,
        content: Value,
    ) -> Result<(MessageId, Timestamp), ServerError> {
        check_content(&content, self.config().limits.max_content_bytes)?;
        let not_member = || {
            ServerError::request(
                ErrorCode::NotMember,
                format!("join room {room} before chatting in it"),
            )
        };
        let user = {
            let state = conn.state();
            if !state.rooms.contains(room) {
                return Err(not_member());
            }
            state.user.clone().ok_or_else(|| {
                ServerError::request(ErrorCode::NotAuthenticated, "not authenticated")
            })?
        };
        let state = self.inner.rooms.get(room).ok_or_else(not_member)?;
        // No lock per room: chats of one room are stored concurrently (the store numbers
        // them in commit order, many per commit) and the room's cursor delivers them in
        // that order, whichever task publishes first.
        let chat = NewChat {
            room: room.clone(),
            from: (*user).clone(),
            message: content,
            timestamp: now_ms(),
        };
        // Persist before deliver: nobody sees a message the history could lose.
        let stored = self.inner.store.append_chat(&chat).await?;
        let (id, timestamp) = (stored.id.clone(), stored.timestamp);
        let seq = sequence_of(&id);
        let delivery = match seq {
            Some(seq) => Delivery::chat(room.clone(), seq, frame(&chat_message(stored))),
            None => Delivery::new(Target::Room(room.clone()), frame(&chat_message(stored))),
        };
        self.publish(delivery).await?;
        // The reply follows the effect: the sender's own `chat` is queued first. It waits
        // only while an earlier chat of the room is still on its way here; one that never
        // comes is read from the store by the repair within ~150 ms.
        if let Some(seq) = seq
            && !state.cursor.delivered_through(seq, REPLY_WAIT).await
        {
            warn!(%room, seq, "chat replied before its delivery here");
        }
        Ok((id, timestamp))
    }

    /// Stored chat of a room: the newest `limit` (default 50, at most 500) strictly older
    /// than `before`, oldest first, as `chat` messages.
    ///
    /// # Errors
    /// Store failures.
    pub async fn history(
        &self,
        room: &RoomName,
        limit: Option<u32>,
        before: Option<&MessageId>,
    ) -> Result<Vec<ServerMessage>, ServerError> {
        let limit = limit.unwrap_or(DEFAULT_HISTORY).clamp(1, MAX_HISTORY);
        let items = self.inner.store.chat_history(room, limit, before).await?;
        Ok(items.into_iter().map(chat_message).collect())
    }

    /// Whether the room's history reaches `since` when nothing is newer: `since` is its
    /// newest chat (or the empty room's zero), not an id beyond it. A `since` beyond it comes from a store that
    /// started over (ids count from 1 again): the client must hear `recovered: false`,
    /// or it would wait for ids it will never see.
    async fn reaches(&self, room: &RoomName, since: &MessageId) -> bool {
        match self.inner.store.chat_history(room, 1, None).await {
            // A room without chat is at 0: ids count from 1.
            Ok(newest) => newest
                .first()
                .map_or(since.as_str() <= EMPTY_ROOM, |chat| chat.id >= *since),
            Err(err) => {
                warn!(%room, cause = %err, "history position not read");
                false
            }
        }
    }

    /// Queues the stored chat of `room` newer than `since` and at most number `through`
    /// (what this node delivered before the joiner entered: everything after it reaches
    /// the joiner live), at most the replay limit, the newest ones. Returns how many and
    /// whether that was everything.
    pub(super) async fn replay(
        &self,
        conn: &ConnHandle,
        room: &RoomName,
        since: &MessageId,
        through: u64,
    ) -> (u64, bool) {
        let limit = self.config().limits.replay_limit;
        let before = sequence_id(through.saturating_add(1));
        match self
            .inner
            .store
            .chat_history(room, limit.saturating_add(1), Some(&before))
            .await
            .map(|mut items| {
                items.retain(|chat| chat.id > *since);
                items
            }) {
            Ok(items) if items.is_empty() => (0, self.reaches(room, since).await),
            Ok(mut items) => {
                let complete = items.len() <= limit as usize;
                if !complete {
                    items.remove(0);
                }
                let count = items.len() as u64;
                for chat in items {
                    self.send(conn, &chat_message(chat));
                }
                (count, complete)
            }
            Err(err) => {
                warn!(%room, cause = %err, "history replay failed");
                (0, false)
            }
        }
    }
}
