//! The rooms the app is in, each with the id of the last chat it delivered there: what a
//! reconnect rejoins with `since`, and what keeps a chat from reaching the app twice
//! (replayed after being seen live, or repeated by a second rejoin).

use roomcast_protocol::{MessageId, RoomName};

use super::small_map::SmallMap;

/// Joined rooms and their positions.
#[derive(Debug, Default)]
pub struct Rooms {
    last_seen: SmallMap<RoomName, Option<MessageId>>,
}

impl Rooms {
    /// Starts tracking `room` (no-op if already tracked).
    pub fn track(&mut self, room: &RoomName) {
        self.last_seen.entry_or_default(room.clone());
    }

    /// Stops tracking `room`; returns whether it was tracked.
    pub fn untrack(&mut self, room: &RoomName) -> bool {
        self.last_seen.remove(room).is_some()
    }

    /// Whether `room` is tracked.
    pub fn contains(&self, room: &RoomName) -> bool {
        self.last_seen.contains_key(room)
    }

    /// Records a chat of `room`; `false` when it must not reach the app (already seen, or
    /// not a tracked room). Ids sort in acceptance order within a room (CONTRACT §5).
    pub fn accept(&mut self, room: &RoomName, id: &MessageId) -> bool {
        match self.last_seen.get_mut(room) {
            Some(last) if last.as_ref().is_none_or(|seen| id > seen) => {
                *last = Some(id.clone());
                true
            }
            _ => false,
        }
    }

    /// Every tracked room with the position to rejoin it from.
    pub fn positions(&self) -> impl Iterator<Item = (&RoomName, Option<&MessageId>)> {
        self.last_seen
            .iter()
            .map(|(room, last)| (room, last.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::new(name).unwrap()
    }

    fn id(n: u64) -> MessageId {
        MessageId::new(format!("{n:016x}")).unwrap()
    }

    #[test]
    fn a_chat_is_accepted_once_and_only_in_order() {
        let mut rooms = Rooms::default();
        rooms.track(&room("lobby"));
        assert!(rooms.accept(&room("lobby"), &id(5)));
        assert!(!rooms.accept(&room("lobby"), &id(5)), "a duplicate");
        assert!(
            !rooms.accept(&room("lobby"), &id(4)),
            "older than the position"
        );
        assert!(rooms.accept(&room("lobby"), &id(6)));
        assert_eq!(
            rooms.positions().collect::<Vec<_>>(),
            [(&room("lobby"), Some(&id(6)))]
        );
    }

    #[test]
    fn untracked_rooms_accept_nothing_and_are_not_rejoined() {
        let mut rooms = Rooms::default();
        assert!(!rooms.accept(&room("lobby"), &id(1)));
        rooms.track(&room("lobby"));
        rooms.track(&room("news"));
        assert!(rooms.untrack(&room("lobby")));
        assert!(!rooms.untrack(&room("lobby")));
        assert_eq!(
            rooms.positions().collect::<Vec<_>>(),
            [(&room("news"), None)]
        );
    }
}
