//! The rooms the app is in, each with the id of the last chat it delivered there: what a
//! reconnect rejoins with `since`, and what keeps a chat from reaching the app twice
//! (replayed after being seen live, or repeated by a second rejoin).

use roomcast_protocol::{MessageId, RoomName};

use super::small_map::SmallMap;

/// Where the app is in a room.
#[derive(Debug, Default)]
struct Position {
    /// The last chat delivered.
    last: Option<MessageId>,
    /// The server accepted a join of it at least once.
    confirmed: bool,
}

/// Joined rooms and their positions.
#[derive(Debug, Default)]
pub struct Rooms {
    positions: SmallMap<RoomName, Position>,
}

impl Rooms {
    /// Starts tracking `room` (no-op if already tracked).
    pub fn track(&mut self, room: &RoomName) {
        self.positions.entry_or_default(room.clone());
    }

    /// The server accepted a join of `room`.
    pub fn confirm(&mut self, room: &RoomName) {
        if let Some(position) = self.positions.get_mut(room) {
            position.confirmed = true;
        }
    }

    /// Whether the server accepted a join of `room` (so joining it again is a rejoin).
    pub fn is_confirmed(&self, room: &RoomName) -> bool {
        self.positions
            .iter()
            .any(|(r, position)| r == room && position.confirmed)
    }

    /// Stops tracking `room`; returns whether it was tracked.
    pub fn untrack(&mut self, room: &RoomName) -> bool {
        self.positions.remove(room).is_some()
    }

    /// The last chat delivered in `room`, if any.
    pub fn position(&self, room: &RoomName) -> Option<&MessageId> {
        self.positions
            .iter()
            .find(|(r, _)| *r == room)
            .and_then(|(_, position)| position.last.as_ref())
    }

    /// Whether `room` is tracked.
    pub fn contains(&self, room: &RoomName) -> bool {
        self.positions.contains_key(room)
    }

    /// Records a chat of `room`; `false` when it must not reach the app (already seen, or
    /// not a tracked room). Ids sort in acceptance order within a room (CONTRACT §5).
    pub fn accept(&mut self, room: &RoomName, id: &MessageId) -> bool {
        match self.positions.get_mut(room) {
            Some(position) if position.last.as_ref().is_none_or(|seen| id > seen) => {
                position.last = Some(id.clone());
                true
            }
            _ => false,
        }
    }

    /// Forgets the position in `room`: the next chat is accepted whatever its id. For a
    /// rejoin the server could not continue (`recovered: false`): its history no longer
    /// reaches back that far, or its store started over and numbers from 1 again.
    pub fn restart(&mut self, room: &RoomName) {
        if let Some(position) = self.positions.get_mut(room) {
            position.last = None;
        }
    }

    /// Every tracked room with the position to rejoin it from.
    pub fn positions(&self) -> impl Iterator<Item = (&RoomName, Option<&MessageId>)> {
        self.positions
            .iter()
            .map(|(room, position)| (room, position.last.as_ref()))
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
        assert!(!rooms.is_confirmed(&room("news")));
        rooms.confirm(&room("news"));
        assert!(rooms.is_confirmed(&room("news")));
        rooms.confirm(&room("lobby"));
        assert!(
            !rooms.is_confirmed(&room("lobby")),
            "confirming an untracked room does not track it"
        );
        assert_eq!(
            rooms.positions().collect::<Vec<_>>(),
            [(&room("news"), None)]
        );
    }
}
