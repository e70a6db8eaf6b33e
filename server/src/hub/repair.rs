//! Gap repair and the position check: how a room's chats reach this node's members
//! without a gap when the bus loses some (CLUSTER.md §2.2). The store's ids are dense
//! and visible in commit order, so "every chat after N and before M" read from the store
//! is exactly what the bus lost; each is handed to the room's [`Cursor`](super::cursor),
//! which drops what was delivered meanwhile.
//!
//! - A chat that arrives ahead of its turn waits [`REPAIR_AFTER`] (the missing one is
//!   usually just slower), then the gap is read from the store.
//! - The position check (periodically, and at once after every resubscription, asked by
//!   the broker) compares each room's newest stored id with what was delivered here, which
//!   catches losses at the tail that no later chat reveals.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use roomcast_protocol::{MessageId, RoomName};
use tracing::{debug, warn};

use super::chat::chat_message;
use super::room::Room;
use super::{Hub, frame};
use crate::ServerError;
use crate::store::sequence_id;

/// How long a chat that came ahead of its turn waits for the missing ones before they
/// are read from the store.
pub(crate) const REPAIR_AFTER: Duration = Duration::from_millis(150);
/// How many chats one store read repairs.
const REPAIR_BATCH: u32 = 500;

/// A message id as its number in its scope's sequence; `None` for an id no store
/// assigned (not 16 hex digits).
pub(crate) fn sequence_of(id: &MessageId) -> Option<u64> {
    let text = id.as_str();
    (text.len() == 16)
        .then(|| u64::from_str_radix(text, 16).ok())
        .flatten()
}

impl Hub {
    /// Places `room`'s cursor at the room's newest stored chat if it is not placed, or
    /// if the room has no member here yet (what it knew went stale while no member kept
    /// the node listening). Called after the node hears the room, before a member enters.
    ///
    /// # Errors
    /// Store failures (the join then fails: without a position, the member could see a
    /// gap).
    pub(super) async fn place_cursor(&self, room: &Arc<Room>) -> Result<(), ServerError> {
        if room.cursor.is_placed() && room.has_members() {
            return Ok(());
        }
        let position = self.room_position(&room.name).await?;
        if room.cursor.is_placed() && room.has_members() {
            // Another joiner placed it and entered meanwhile: it is live now, and moving
            // it would drop what that member is owed.
            return Ok(());
        }
        let gap = room.cursor.place(position, |f| self.deliver_chat(room, f));
        if let Some((after, before)) = gap.gap {
            self.spawn_repair(room.clone(), after, Some(before), true);
        }
        Ok(())
    }

    /// The newest id the store assigned in `room` (0 when it has none).
    async fn room_position(&self, room: &RoomName) -> Result<u64, ServerError> {
        let positions = self
            .inner
            .store
            .room_positions(std::slice::from_ref(room))
            .await?;
        Ok(positions
            .first()
            .and_then(|(_, id)| sequence_of(id))
            .unwrap_or(0))
    }

    /// Queues a chat frame for every member of `room` here.
    pub(super) fn deliver_chat(
        &self,
        room: &Room,
        frame: &tokio_tungstenite::tungstenite::Utf8Bytes,
    ) {
        let outgoing = super::outgoing::Outgoing::new(
            frame.clone(),
            self.config().features.compression_threshold,
        );
        room.for_each_member(|conn| {
            super::outgoing::send_outgoing(&self.inner.metrics, conn, &outgoing);
        });
    }

    /// Reads chats `after < id < before` (`before` open when `None`) of `room` from the
    /// store into its cursor, after a pause when `wait` (the missing ones may still
    /// come), until no gap is left. One repair per room at a time.
    pub(super) fn spawn_repair(
        &self,
        room: Arc<Room>,
        after: u64,
        before: Option<u64>,
        wait: bool,
    ) {
        if room.repairing.swap(true, Ordering::AcqRel) {
            return;
        }
        let hub = self.clone();
        self.spawn_background(async move {
            if wait {
                tokio::time::sleep(REPAIR_AFTER).await;
            }
            let mut range = Some((after, before));
            while let Some((after, before)) = range {
                // The gap may have closed while waiting; repair from where it is now.
                let after = room.cursor.delivered().map_or(after, |d| d.max(after));
                match hub.repair(&room, after, before).await {
                    Ok(()) => range = room.cursor.gap().map(|(a, b)| (a, Some(b))),
                    Err(err) => {
                        warn!(room = %room.name, cause = %err, "gap repair failed; the position check retries");
                        break;
                    }
                }
            }
            room.repairing.store(false, Ordering::Release);
            // A gap seen while this repair was ending was not taken up by anyone.
            if let Some((after, before)) = room.cursor.gap() {
                hub.spawn_repair(room, after, Some(before), false);
            }
        });
    }

    async fn repair(
        &self,
        room: &Room,
        after: u64,
        before: Option<u64>,
    ) -> Result<(), ServerError> {
        let through = before.map(|b| sequence_id(b.saturating_sub(1)));
        let mut from = after;
        loop {
            if before.is_some_and(|b| from + 1 >= b) {
                return Ok(());
            }
            let chats = self
                .inner
                .store
                .chat_range(
                    &room.name,
                    &sequence_id(from),
                    through.as_ref(),
                    REPAIR_BATCH,
                )
                .await?;
            let Some(last) = chats.last().and_then(|c| sequence_of(&c.id)) else {
                return Ok(());
            };
            self.inner.metrics.gap_repairs.inc_by(chats.len() as u64);
            debug!(room = %room.name, after = from, count = chats.len(), "chats repaired from the store");
            let full = chats.len() == REPAIR_BATCH as usize;
            for chat in chats {
                if let Some(seq) = sequence_of(&chat.id) {
                    room.cursor.accept(seq, frame(&chat_message(chat)), |f| {
                        self.deliver_chat(room, f);
                    });
                }
            }
            if !full {
                return Ok(());
            }
            from = last;
        }
    }

    /// Delivers the room's chats up to `since` (a joiner's) from the store when this
    /// node has not delivered that far yet. A failure only costs the joiner a repeat.
    pub(super) async fn catch_up_to(&self, room: &Room, since: Option<&MessageId>) {
        let (Some(since), Some(delivered)) = (since.and_then(sequence_of), room.cursor.delivered())
        else {
            return;
        };
        if since <= delivered {
            return;
        }
        if let Err(err) = self
            .repair(room, delivered, Some(since.saturating_add(1)))
            .await
        {
            warn!(room = %room.name, cause = %err, "a joiner's `since` is ahead of this node and the store did not answer");
        }
    }

    /// The position check: for every room with members here, the newest stored chat
    /// against the newest delivered; what is missing is read from the store at once.
    pub(crate) async fn check_positions(&self) {
        let rooms: Vec<Arc<Room>> = self
            .inner
            .rooms
            .all()
            .into_iter()
            .filter(|room| room.has_members() && room.cursor.is_placed())
            .collect();
        if rooms.is_empty() {
            return;
        }
        let names: Vec<RoomName> = rooms.iter().map(|r| r.name.clone()).collect();
        let positions = match self.inner.store.room_positions(&names).await {
            Ok(positions) => positions,
            Err(err) => {
                warn!(cause = %err, "position check: room positions not read");
                return;
            }
        };
        for (name, id) in positions {
            let (Some(top), Some(room)) = (sequence_of(&id), rooms.iter().find(|r| r.name == name))
            else {
                continue;
            };
            if let Some(delivered) = room.cursor.delivered()
                && top > delivered
            {
                self.spawn_repair(room.clone(), delivered, Some(top + 1), false);
            }
        }
    }
}
