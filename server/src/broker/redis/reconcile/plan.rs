//! The reconcile's plan: what this node has ([`Here`], from its local side) against what
//! Redis has of it ([`Seen`]), and what a pass repairs ([`Plan`]). Pure, so that the
//! rules (what is written at once, what waits for a second look) are tested here
//! without Redis.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use roomcast_protocol::{RoomName, User};
use tokio::time::Instant;

use crate::broker::PresenceSnapshot;
use crate::model::ConnectionInfo;

/// Stale entries seen by the last pass, with when each was first seen.
pub(super) type Suspects = HashMap<Stale, Instant>;

/// An entry of something this node no longer has.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Stale {
    /// A user in this node's hash of a room, with its entry as read.
    Member {
        room: RoomName,
        user: String,
        entry: String,
    },
    /// This node's seats in a room (`seen`) that are not its connections there (`here`).
    Seats {
        room: RoomName,
        seen: u64,
        here: u64,
    },
    /// A per-user slot (user, connection) of this node.
    Slot { user: String, client: String },
    /// A connection in `P:conns` or this node's index of it.
    Conn(String),
}

/// What a pass repairs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Mode {
    /// Everything, stale entries at their second look.
    Full { second_look: Duration },
    /// Only what is missing (a rebuild: the keys were lost), at once.
    Restore,
}

/// This node's part of the cluster, from its local side: what the keys are repaired to.
#[derive(Debug, Default)]
pub(super) struct Here {
    /// Room → its users here (by id) and its connections here.
    pub(super) rooms: HashMap<RoomName, (HashMap<String, User>, u64)>,
    /// Authenticated connection → its info.
    pub(super) conns: HashMap<String, ConnectionInfo>,
    /// User → its connections here.
    pub(super) users: HashMap<String, HashSet<String>>,
}

impl From<PresenceSnapshot> for Here {
    fn from(snapshot: PresenceSnapshot) -> Self {
        let mut here = Self::default();
        for room in snapshot.rooms {
            let users = room
                .users
                .into_iter()
                .map(|user| (user.user_id.to_string(), user))
                .collect();
            here.rooms
                .insert(room.name, (users, room.connections as u64));
        }
        for info in snapshot.connections {
            let Some(user) = &info.user else { continue };
            let client = info.client_id.to_string();
            here.users
                .entry(user.user_id.to_string())
                .or_default()
                .insert(client.clone());
            here.conns.insert(client, info);
        }
        here
    }
}

impl Here {
    pub(super) fn has_member(&self, room: &RoomName, user: &str) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|(users, _)| users.contains_key(user))
    }
}

/// This node's keys as Redis has them: every room, user and connection that its indexes
/// or its local side name.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub(super) rooms: HashMap<RoomName, RoomSeen>,
    /// User → its hash (connection → node), and whether this node's index lists it.
    pub(super) users: HashMap<String, (HashMap<String, String>, bool)>,
    /// Connection → the node its `P:conns` entry names, and whether this node's index
    /// lists it.
    pub(super) conns: HashMap<String, (Option<String>, bool)>,
}

/// One room's keys of this node.
#[derive(Debug, Default)]
pub(super) struct RoomSeen {
    /// This node's hash: user → entry as stored.
    pub(super) entries: HashMap<String, String>,
    pub(super) seats: u64,
    /// The room's node set names this node.
    pub(super) listed: bool,
    /// This node's room index names the room.
    pub(super) indexed: bool,
}

/// What one pass does.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// Missing, written at once: members (room, user), slots (user, connection),
    /// connections, and (a restore only) seats raised (room, seen, here).
    pub(super) members: Vec<(RoomName, User)>,
    pub(super) slots: Vec<(String, String)>,
    pub(super) conns: Vec<ConnectionInfo>,
    pub(super) raise: Vec<(RoomName, u64, u64)>,
    /// Stale at the second look: removed now.
    pub(super) remove: Vec<Stale>,
    /// Stale at the first look (or too recently): for the next pass.
    pub(super) suspects: Suspects,
    /// Whose indexes may be off.
    pub(super) tidy_rooms: Vec<RoomName>,
    pub(super) tidy_users: Vec<String>,
}

impl Plan {
    pub(super) fn is_idle(&self) -> bool {
        self.members.is_empty()
            && self.slots.is_empty()
            && self.conns.is_empty()
            && self.raise.is_empty()
            && self.remove.is_empty()
    }
}

/// Compares what this node has with what Redis has of it.
pub(super) fn plan(
    me: &str,
    here: &Here,
    seen: &Seen,
    previous: &Suspects,
    now: Instant,
    mode: Mode,
) -> Plan {
    let mut plan = Plan::default();
    let mut stale = Vec::new();
    for (room, theirs) in &seen.rooms {
        let (users, conns) = here
            .rooms
            .get(room)
            .map_or((None, 0), |(users, conns)| (Some(users), *conns));
        for (user, entry) in &theirs.entries {
            if !users.is_some_and(|u| u.contains_key(user)) {
                stale.push(Stale::Member {
                    room: room.clone(),
                    user: user.clone(),
                    entry: entry.clone(),
                });
            }
        }
        for (id, user) in users.into_iter().flatten() {
            if !theirs.entries.contains_key(id) {
                plan.members.push((room.clone(), user.clone()));
            }
        }
        match mode {
            _ if theirs.seats == conns => {}
            Mode::Full { .. } => stale.push(Stale::Seats {
                room: room.clone(),
                seen: theirs.seats,
                here: conns,
            }),
            Mode::Restore if theirs.seats < conns => {
                plan.raise.push((room.clone(), theirs.seats, conns));
            }
            Mode::Restore => {}
        }
        let keyed = !theirs.entries.is_empty() || theirs.seats > 0;
        if theirs.listed == theirs.entries.is_empty() || theirs.indexed != keyed {
            plan.tidy_rooms.push(room.clone());
        }
    }
    for (user, (fields, indexed)) in &seen.users {
        let mine = here.users.get(user);
        for (client, node) in fields {
            if node == me && !mine.is_some_and(|m| m.contains(client)) {
                stale.push(Stale::Slot {
                    user: user.clone(),
                    client: client.clone(),
                });
            }
        }
        for client in mine.into_iter().flatten() {
            if fields.get(client).is_none_or(|node| node != me) {
                plan.slots.push((user.clone(), client.clone()));
            }
        }
        if *indexed != (mine.is_some() || fields.values().any(|node| node == me)) {
            plan.tidy_users.push(user.clone());
        }
    }
    for (client, (node, indexed)) in &seen.conns {
        let ours = node.as_deref() == Some(me);
        match here.conns.get(client) {
            Some(info) if !ours || !indexed => plan.conns.push(info.clone()),
            None if ours || *indexed => stale.push(Stale::Conn(client.clone())),
            _ => {}
        }
    }
    match mode {
        Mode::Full { second_look } => {
            for stale in stale {
                match previous.get(&stale) {
                    Some(first) if now.duration_since(*first) >= second_look => {
                        plan.remove.push(stale);
                    }
                    first => {
                        let first = first.copied().unwrap_or(now);
                        plan.suspects.insert(stale, first);
                    }
                }
            }
        }
        Mode::Restore => plan.suspects = previous.clone(),
    }
    plan
}

#[cfg(test)]
mod tests {
    use roomcast_protocol::{ClientId, UserId};
    use serde_json::Value;

    use super::*;
    use crate::broker::RoomPresence;

    const LOOK: Duration = Duration::from_secs(5);
    const FULL: Mode = Mode::Full { second_look: LOOK };

    fn user(id: &str) -> User {
        User::new(
            UserId::new(id).expect("a user id"),
            None,
            Vec::new(),
            serde_json::Map::new(),
        )
    }

    fn room() -> RoomName {
        RoomName::new("lobby").expect("a room name")
    }

    /// alice here with one connection `c1` in the lobby.
    fn alice_here() -> Here {
        let alice = user("alice");
        Here::from(PresenceSnapshot {
            rooms: vec![RoomPresence {
                name: room(),
                users: vec![alice.clone()],
                connections: 1,
            }],
            connections: vec![ConnectionInfo {
                client_id: ClientId::new("c1").expect("a client id"),
                user: Some(alice),
                authenticated: true,
                rooms: vec![room()],
                data: Value::Null,
                remote_addr: "127.0.0.1:1".into(),
                connected_at: 0,
                expires_at: None,
                compress: false,
                messages_in: 0,
                messages_out: 0,
            }],
        })
    }

    /// Redis holding alice's keys on node `me` (connection `c1`, one seat).
    fn alice_seen() -> Seen {
        let mut seen = Seen::default();
        let entries = HashMap::from([("alice".to_owned(), "{\"at\":1}".to_owned())]);
        seen.rooms.insert(
            room(),
            RoomSeen {
                entries,
                seats: 1,
                listed: true,
                indexed: true,
            },
        );
        let slots = HashMap::from([("c1".to_owned(), "me".to_owned())]);
        seen.users.insert("alice".to_owned(), (slots, true));
        seen.conns
            .insert("c1".to_owned(), (Some("me".to_owned()), true));
        seen
    }

    #[test]
    fn keys_that_match_the_local_side_need_nothing() {
        let plan = plan(
            "me",
            &alice_here(),
            &alice_seen(),
            &Suspects::new(),
            Instant::now(),
            FULL,
        );
        assert!(plan.is_idle(), "{plan:?}");
        assert!(
            plan.suspects.is_empty() && plan.tidy_rooms.is_empty() && plan.tidy_users.is_empty()
        );
    }

    #[test]
    fn what_this_node_no_longer_has_is_removed_only_at_a_second_look_long_enough_after() {
        let (here, seen) = (Here::default(), alice_seen());
        let start = Instant::now();
        let first = plan("me", &here, &seen, &Suspects::new(), start, FULL);
        assert!(first.remove.is_empty(), "not at the first look: {first:?}");
        // The member, the seat, the slot and the connection.
        assert_eq!(first.suspects.len(), 4, "{first:?}");
        let early = plan("me", &here, &seen, &first.suspects, start + LOOK / 2, FULL);
        assert!(early.remove.is_empty(), "not before the second look is due");
        assert_eq!(early.suspects, first.suspects, "first seen when first seen");
        let second = plan("me", &here, &seen, &early.suspects, start + LOOK, FULL);
        assert_eq!(second.remove.len(), 4, "{second:?}");
        assert!(second.suspects.is_empty());
        assert!(second.members.is_empty() && second.slots.is_empty() && second.conns.is_empty());
    }

    #[test]
    fn a_room_entry_that_changed_between_the_looks_is_a_new_suspect() {
        let (here, mut seen) = (Here::default(), alice_seen());
        let start = Instant::now();
        let first = plan("me", &here, &seen, &Suspects::new(), start, FULL);
        // alice left and entered again meanwhile (a fresh entry), then left again.
        let entries = &mut seen.rooms.get_mut(&room()).expect("the room").entries;
        entries.insert("alice".to_owned(), "{\"at\":2}".to_owned());
        let second = plan("me", &here, &seen, &first.suspects, start + LOOK, FULL);
        let removed_member = second
            .remove
            .iter()
            .any(|stale| matches!(stale, Stale::Member { .. }));
        assert!(!removed_member, "{second:?}");
        assert!(second.suspects.keys().any(|stale| matches!(
            stale,
            Stale::Member { entry, .. } if entry == "{\"at\":2}"
        )));
    }

    #[test]
    fn what_redis_lacks_is_written_at_once_and_a_restore_raises_seats_but_removes_nothing() {
        let here = alice_here();
        let mut seen = alice_seen();
        let lobby = seen.rooms.get_mut(&room()).expect("the room");
        lobby.entries.clear();
        lobby.seats = 0;
        seen.users.clear();
        seen.users
            .insert("alice".to_owned(), (HashMap::new(), false));
        seen.conns.insert("c1".to_owned(), (None, false));
        seen.conns
            .insert("gone".to_owned(), (Some("me".to_owned()), true));
        let full = plan("me", &here, &seen, &Suspects::new(), Instant::now(), FULL);
        assert_eq!(full.members.len(), 1, "{full:?}");
        assert_eq!(full.slots, [("alice".to_owned(), "c1".to_owned())]);
        assert_eq!(full.conns.len(), 1);
        assert!(full.raise.is_empty(), "seats wait for the second look");
        assert_eq!(full.tidy_rooms, [room()], "listed without a member");
        assert_eq!(full.tidy_users, ["alice"], "not in the index");
        let restore = plan(
            "me",
            &here,
            &seen,
            &Suspects::new(),
            Instant::now(),
            Mode::Restore,
        );
        assert_eq!(restore.members.len(), 1);
        assert_eq!(restore.raise, [(room(), 0, 1)]);
        assert!(
            restore.remove.is_empty() && restore.suspects.is_empty(),
            "{restore:?}"
        );
    }

    #[test]
    fn another_nodes_slots_are_not_this_nodes_to_repair() {
        let mut seen = alice_seen();
        let slots = &mut seen.users.get_mut("alice").expect("alice").0;
        slots.insert("c9".to_owned(), "other".to_owned());
        let plan = plan(
            "me",
            &alice_here(),
            &seen,
            &Suspects::new(),
            Instant::now(),
            FULL,
        );
        assert!(plan.is_idle() && plan.suspects.is_empty(), "{plan:?}");
    }
}
