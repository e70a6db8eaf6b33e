//! Room membership: the rooms the app is in ([`Rooms`], with the recovery cursor each is
//! rejoined from) and every join and leave on its way: joins sent and not answered, joins
//! made while disconnected (settled by the rejoin after the reconnect), leaves not
//! answered (their rooms' chats no longer reach the app), and rejoins refused for a passing
//! reason, sent again later. One owner because each answer, timeout or drop changes
//! several of these at once, and they must agree on which rooms the app is in.

use roomcast_protocol::{ErrorCode, MessageId, RoomName};

use super::Millis;
use super::connection::Phase;
use super::json::{self, Object};
use super::requests::{Ids, request_frame};
use super::rooms::Rooms;
use super::small_map::SmallMap;
use super::types::{Effect, Message};
use crate::error::ClientError;

/// A rejoin refused for a passing reason is sent again after this long, this many times.
pub(super) const REJOIN_RETRY_MS: u64 = 1_000;
pub(super) const REJOIN_RETRIES: u32 = 5;

/// An app's `join` waiting for its answer.
#[derive(Debug, Clone, Copy)]
struct Waiter {
    id: u64,
    deadline: Millis,
    timeout_ms: u64,
}

/// A `join` on the wire, by request id: the app's own, or a rejoin after a reconnect.
#[derive(Debug)]
struct Joining {
    room: RoomName,
    /// The app requests its answer settles.
    waiters: Vec<Waiter>,
    /// A rejoin of a room the server had accepted before: its outcome is emitted as
    /// `rejoined` or `rejoin_failed`.
    rejoin: bool,
    /// Retries of this rejoin so far.
    attempt: u32,
}

/// The rooms and the joins and leaves of them in progress.
#[derive(Debug, Default)]
pub(super) struct Membership {
    rooms: Rooms,
    /// Joins sent and not answered yet.
    joining: SmallMap<u64, Joining>,
    /// Joins made while disconnected, settled by their room's join after the reconnect.
    joins_waiting: SmallMap<RoomName, Vec<Waiter>>,
    /// Leaves sent and not answered yet (or unanswered in time): their rooms' chats no
    /// longer reach the app.
    leaving: SmallMap<u64, RoomName>,
    /// Rejoins refused for a passing reason (`rate_limited`, ...): sent again at the
    /// time given, with the attempts made so far.
    retries: SmallMap<RoomName, (Millis, u32)>,
}

impl Membership {
    /// Joins are remembered: after a reconnect every room is rejoined from the last chat
    /// the app got there. A join made while disconnected is settled by that rejoin. A join
    /// that fails (refused, or no answer in time) is forgotten.
    pub(super) fn join(
        &mut self,
        id: u64,
        room: RoomName,
        timeout_ms: u64,
        now: Millis,
        phase: Phase,
    ) -> Vec<Effect> {
        let waiter = Waiter {
            id,
            deadline: now.saturating_add(timeout_ms),
            timeout_ms,
        };
        self.rooms.track(&room);
        if phase == Phase::Open {
            let frame = join_frame(id, &room, None);
            let joining = Joining {
                room,
                waiters: vec![waiter],
                rejoin: false,
                attempt: 0,
            };
            self.joining.insert(id, joining);
            vec![Effect::Send(frame)]
        } else {
            self.joins_waiting.entry_or_default(room).push(waiter);
            Vec::new()
        }
    }

    /// Leaving forgets the room at once (no rejoin, no more of its chats). Returns the
    /// `leave` frame to submit when open; otherwise the leave is settled here.
    pub(super) fn leave(
        &mut self,
        id: u64,
        room: &RoomName,
        phase: Phase,
        effects: &mut Vec<Effect>,
    ) -> Option<String> {
        let tracked = self.rooms.untrack(room);
        self.retries.remove(room);
        effects.extend(
            self.joins_waiting
                .remove(room)
                .into_iter()
                .flatten()
                .map(|join| {
                    Effect::Settle(
                        join.id,
                        Err(ClientError::InvalidRequest(format!(
                            "left room {room} before joining it"
                        ))),
                    )
                }),
        );
        if phase == Phase::Open {
            let frame = request_frame("leave", id, [("room", json::quote(room.as_str()).as_str())]);
            self.leaving.insert(id, room.clone());
            return Some(frame);
        }
        if tracked {
            // The server forgot the connection's rooms with the connection.
            let answer = format!(r#"{{"room":{}}}"#, json::quote(room.as_str()));
            effects.push(Effect::Settle(id, Ok(answer)));
        } else {
            effects.push(Effect::Settle(
                id,
                Err(ClientError::Server {
                    code: ErrorCode::NotMember,
                    message: format!("not a member of room {room}"),
                }),
            ));
        }
        None
    }

    /// The server answered request `id`: a leave's room is done with.
    pub(super) fn left(&mut self, id: u64) {
        self.leaving.remove(&id);
    }

    /// Whether a chat of `room` with `id` reaches the app: each chat of a room the app
    /// joined once, in order, across reconnects; none of a room it is leaving.
    pub(super) fn delivers(&mut self, room: Option<RoomName>, id: Option<MessageId>) -> bool {
        match (room, id) {
            // Rooms the app is leaving: the app is done with them.
            (Some(room), _) if self.leaving.values().any(|r| *r == room) => false,
            // Rooms the app joined: each chat once, in order, across reconnects.
            (Some(room), Some(id)) if self.rooms.contains(&room) => self.rooms.accept(&room, &id),
            // Rooms the server put the connection in (default rooms, the API).
            _ => true,
        }
    }

    /// After `auth_ok`: rejoins every room from its position.
    pub(super) fn rejoin_all(&mut self, ids: &mut Ids, effects: &mut Vec<Effect>) {
        let positions: Vec<(RoomName, Option<MessageId>)> = self
            .rooms
            .positions()
            .map(|(room, last)| (room.clone(), last.cloned()))
            .collect();
        for (room, since) in positions {
            let id = ids.allocate();
            effects.push(Effect::Send(join_frame(id, &room, since.as_ref())));
            let waiters = self.joins_waiting.remove(&room).unwrap_or_default();
            let rejoin = self.rooms.is_confirmed(&room);
            self.joining.insert(
                id,
                Joining {
                    room,
                    waiters,
                    rejoin,
                    attempt: 0,
                },
            );
        }
    }

    /// The answer to request `id`, if it is a join: returns whether it was.
    pub(super) fn answered(
        &mut self,
        id: u64,
        outcome: &Result<String, ClientError>,
        now: Millis,
        effects: &mut Vec<Effect>,
    ) -> bool {
        let Some(joining) = self.joining.remove(&id) else {
            return false;
        };
        self.joined(joining, outcome, now, effects);
        true
    }

    /// The answer to a join: the room is in, or (for now or for good) not.
    fn joined(
        &mut self,
        joining: Joining,
        outcome: &Result<String, ClientError>,
        now: Millis,
        effects: &mut Vec<Effect>,
    ) {
        let room = &joining.room;
        // The app may have left while the join was on its way: then it hears nothing more.
        let tracked = self.rooms.contains(room);
        let mut announce = joining.rejoin && tracked;
        match outcome {
            Ok(answer) => {
                self.rooms.confirm(room);
                // A rejoin the server could not continue from our position: what it sends
                // from now on counts, even with ids below the old position.
                if joining.rejoin
                    && !Object::parse(answer)
                        .unwrap_or_default()
                        .is_true("recovered")
                {
                    self.rooms.restart(room);
                }
            }
            Err(err) if joining.rejoin && tracked && is_passing(err) => {
                if joining.attempt < REJOIN_RETRIES {
                    let at = now.saturating_add(REJOIN_RETRY_MS);
                    self.retries.insert(room.clone(), (at, joining.attempt + 1));
                    announce = false;
                } else {
                    self.rooms.untrack(room);
                }
            }
            // Refused now (e.g. `forbidden`): stop rejoining it.
            Err(_) if joining.rejoin => _ = self.rooms.untrack(room),
            // Another join of a room the client is in was refused: it stays in.
            Err(_) if self.rooms.is_confirmed(room) => {}
            Err(_) => {
                // A refused first join is forgotten, unless another one is on its way.
                let pending = self.joining.values().any(|j| j.room == *room)
                    || self.joins_waiting.contains_key(room);
                if !pending {
                    self.rooms.untrack(room);
                }
            }
        }
        if announce {
            effects.push(rejoin_event(room, outcome));
        }
        for waiter in joining.waiters {
            effects.push(Effect::Settle(waiter.id, outcome.clone()));
        }
    }

    /// Sends the rejoins whose retry time came.
    pub(super) fn retry_rejoins(
        &mut self,
        now: Millis,
        phase: Phase,
        ids: &mut Ids,
        effects: &mut Vec<Effect>,
    ) {
        if phase != Phase::Open {
            return;
        }
        for (room, (_, attempt)) in self.retries.extract_if(|_, (at, _)| *at <= now) {
            let id = ids.allocate();
            let since = self.rooms.position(&room).cloned();
            effects.push(Effect::Send(join_frame(id, &room, since.as_ref())));
            let joining = Joining {
                room,
                waiters: Vec::new(),
                rejoin: true,
                attempt,
            };
            self.joining.insert(id, joining);
        }
    }

    /// Rejects the joins that waited too long; a room whose every join failed so, and
    /// that the server never accepted, is forgotten.
    pub(super) fn expire(&mut self, now: Millis, effects: &mut Vec<Effect>) {
        let mut expired = Vec::new();
        let mut given_up = Vec::new();
        for (id, joining) in self.joining.iter_mut() {
            let before = expired.len();
            expired.extend(take_expired(&mut joining.waiters, now, &joining.room));
            // The app's own join, all of whose requests gave up: its late answer is ignored.
            if expired.len() > before && joining.waiters.is_empty() && !joining.rejoin {
                given_up.push(*id);
            }
        }
        for id in given_up {
            self.joining.remove(&id);
        }
        let mut emptied = Vec::new();
        for (room, waiters) in self.joins_waiting.iter_mut() {
            expired.extend(take_expired(waiters, now, room));
            if waiters.is_empty() {
                emptied.push(room.clone());
            }
        }
        for room in emptied {
            self.joins_waiting.remove(&room);
        }
        for (waiter, room) in expired {
            let waited = self.joining.values().any(|j| j.room == room)
                || self.joins_waiting.contains_key(&room);
            if !waited && !self.rooms.is_confirmed(&room) {
                self.rooms.untrack(&room);
            }
            effects.push(Effect::Settle(
                waiter.id,
                Err(ClientError::Timeout(waiter.timeout_ms)),
            ));
        }
    }

    /// The deadlines of the app's joins, and (only while open: they are sent then) the
    /// times of the rejoin retries.
    pub(super) fn deadlines(&self, phase: Phase) -> impl Iterator<Item = Millis> + '_ {
        let joins = self
            .joining
            .values()
            .flat_map(|j| &j.waiters)
            .chain(self.joins_waiting.values().flatten())
            .map(|w| w.deadline);
        let retries = self
            .retries
            .values()
            .filter(move |_| phase == Phase::Open)
            .map(|(at, _)| *at);
        joins.chain(retries)
    }

    /// The connection dropped: the joins on the wire wait for the rejoin after the
    /// reconnect, except those of rooms left meanwhile, which fail now.
    pub(super) fn disconnected(&mut self, effects: &mut Vec<Effect>) {
        for (_, joining) in std::mem::take(&mut self.joining) {
            if self.rooms.contains(&joining.room) {
                // Their app requests wait for the next rejoin.
                self.joins_waiting
                    .entry_or_default(joining.room)
                    .extend(joining.waiters);
            } else {
                // Left meanwhile: there will be no rejoin to settle them.
                for waiter in joining.waiters {
                    effects.push(Effect::Settle(waiter.id, Err(ClientError::Disconnected)));
                }
            }
        }
        // The server forgot the connection's rooms (and pending retries) with it.
        self.leaving.clear();
        self.retries.clear();
    }

    /// The end: every join still waiting (made offline first), for the caller to reject.
    pub(super) fn drain(&mut self) -> Vec<u64> {
        let waiting = self
            .joins_waiting
            .values()
            .flatten()
            .map(|w| w.id)
            .chain(
                self.joining
                    .values()
                    .flat_map(|j| j.waiters.iter().map(|w| w.id)),
            )
            .collect();
        // Rooms whose every join was just rejected are not the app's: a later connect()
        // must not join them behind its back.
        let unconfirmed: Vec<RoomName> = self
            .joins_waiting
            .keys()
            .chain(self.joining.values().map(|j| &j.room))
            .filter(|room| !self.rooms.is_confirmed(room))
            .cloned()
            .collect();
        for room in unconfirmed {
            self.rooms.untrack(&room);
        }
        self.joins_waiting.clear();
        self.joining.clear();
        self.leaving.clear();
        self.retries.clear();
        waiting
    }

    /// The app closed, so it left every room.
    pub(super) fn forget_rooms(&mut self) {
        self.rooms = Rooms::default();
    }
}

/// Errors after which the same join may well succeed a moment later.
fn is_passing(err: &ClientError) -> bool {
    matches!(
        err,
        ClientError::Server {
            code: ErrorCode::RateLimited | ErrorCode::Internal | ErrorCode::NotFound,
            ..
        }
    )
}

/// Removes the waiters whose deadline passed, paired with their room.
fn take_expired(
    waiters: &mut Vec<Waiter>,
    now: Millis,
    room: &RoomName,
) -> Vec<(Waiter, RoomName)> {
    let (expired, kept): (Vec<Waiter>, Vec<Waiter>) =
        waiters.iter().partition(|w| w.deadline <= now);
    *waiters = kept;
    expired.into_iter().map(|w| (w, room.clone())).collect()
}

/// What the app hears about a rejoin after a reconnect: `rejoined` (with the answer's
/// `recovered` and `replayed`) or `rejoin_failed` (with the server's error).
fn rejoin_event(room: &RoomName, outcome: &Result<String, ClientError>) -> Effect {
    let room = json::quote(room.as_str());
    let (kind, json) = match outcome {
        Ok(answer) => {
            let answer = Object::parse(answer).unwrap_or_default();
            let recovered = answer.is_true("recovered");
            let replayed = answer.u64("replayed").unwrap_or(0);
            (
                "rejoined",
                format!(
                    r#"{{"type":"rejoined","room":{room},"recovered":{recovered},"replayed":{replayed}}}"#
                ),
            )
        }
        Err(err) => {
            let message = match err {
                ClientError::Server { message, .. } => message.clone(),
                other => other.to_string(),
            };
            (
                "rejoin_failed",
                format!(
                    r#"{{"type":"rejoin_failed","room":{room},"code":{},"message":{}}}"#,
                    json::quote(err.code()),
                    json::quote(&message)
                ),
            )
        }
    };
    Effect::Emit(Message {
        kind: kind.to_owned(),
        json,
    })
}

fn join_frame(id: u64, room: &RoomName, since: Option<&MessageId>) -> String {
    let room = json::quote(room.as_str());
    let since = since.map(|since| json::quote(since.as_str()));
    let fields = [("room", room.as_str())]
        .into_iter()
        .chain(since.as_deref().map(|since| ("since", since)));
    request_frame("join", id, fields)
}

/// The `room` of a `join` or `leave` the app asked for.
pub(super) fn room_of(payload: &Object<'_>) -> Result<RoomName, ClientError> {
    let name = payload
        .str("room")
        .ok_or_else(|| ClientError::InvalidRequest("`room` must be a string".into()))?;
    RoomName::new(name).map_err(|e| ClientError::InvalidRequest(format!("`room`: {e}")))
}
