//! The SDK's core: a sans-I/O state machine. The wasm façade feeds it what happens (the
//! app's calls, socket events, frames, the clock) and carries out the [`Effect`]s it
//! returns, in order (open or close a socket, send a frame, hand a message to the app,
//! settle a promise, wait before reconnecting). Nothing here touches the browser, so all
//! of it is tested natively with `cargo test`, clock and randomness injected.

mod backoff;
pub mod json;
mod rooms;
pub(crate) mod small_map;

use std::collections::VecDeque;

use roomcast_protocol::codec::{self, DEFAULT_INFLATE_LIMIT};
use roomcast_protocol::{ErrorCode, MessageId, RoomName};

pub use self::backoff::Backoff;
use self::json::Object;
use self::rooms::Rooms;
use self::small_map::SmallMap;
use crate::error::ClientError;

/// Milliseconds (the façade's `Date.now()`; any monotonic source in tests).
pub type Millis = u64;

/// Envelopes (`compressed`, `batch_messages`) unwrapped around one message.
const MAX_ENVELOPES: u8 = 2;
/// A rejoin refused for a passing reason is sent again after this long, this many times.
const REJOIN_RETRY_MS: u64 = 1_000;
const REJOIN_RETRIES: u32 = 5;

/// A wait for a browser timer: browsers (and gloo) take a signed 32-bit count of
/// milliseconds, and anything longer would fire at once.
pub fn timer_delay(ms: u64) -> u32 {
    u32::try_from(ms.min(i32::MAX.unsigned_abs().into())).unwrap_or(0)
}

/// What the app configures.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Ask for `compressed` messages (`?compress=gzip`).
    pub compress: bool,
    /// Reconnect policy; `None` never reconnects.
    pub reconnect: Option<Backoff>,
    /// The server's heartbeat interval: no frame for twice this long means the connection
    /// is dead, and it is replaced.
    pub heartbeat_interval_ms: u64,
    /// Default request timeout.
    pub request_timeout_ms: u64,
    /// Requests kept while disconnected, sent in order after the next `auth_ok`.
    pub offline_queue_limit: usize,
    /// The app gave a `getToken` callback: after close 4001 a fresh token may fix it, so
    /// the client reconnects (asking for a token first).
    pub refreshable_token: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            compress: true,
            reconnect: Some(Backoff::default()),
            heartbeat_interval_ms: 25_000,
            request_timeout_ms: 10_000,
            offline_queue_limit: 100,
            refreshable_token: false,
        }
    }
}

/// The connection state the app sees (`onStateChange`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not started.
    Idle,
    /// Opening the socket or authenticating.
    Connecting,
    /// Authenticated: requests go out at once.
    Open,
    /// Waiting `delay_ms` before attempt `attempt` (1-based).
    Reconnecting {
        /// The attempt about to be made.
        attempt: u32,
        /// How long the client waits first.
        delay_ms: u64,
    },
    /// Done: no more reconnects.
    Closed {
        /// The close code, when the server (or the socket) gave one.
        code: Option<u16>,
        /// Why.
        reason: String,
    },
}

/// What the façade must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Open a WebSocket to this URL (dropping any previous one).
    Open(String),
    /// Send a text frame.
    Send(String),
    /// Close the current socket (its later events are no longer reported).
    Close {
        /// The close code (1000 or 4xxx).
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// Hand a server message to the app's handlers for its `type`.
    Emit(Message),
    /// Settle the app's request `id`: its answer as JSON text, or why it failed.
    Settle(u64, Result<String, ClientError>),
    /// The state changed.
    State(State),
    /// Wait this long, get a token (from `getToken` when there is one), then call
    /// [`Core::reconnect`].
    RetryAfter(u64),
}

/// A server message for the app: its `type`, and the whole message as JSON text (the
/// façade hands it to the browser's `JSON.parse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message's `type`.
    pub kind: String,
    /// The message, as the server sent it (inflated, unpacked from its batch).
    pub json: String,
}

/// A request the app made.
#[derive(Debug)]
struct Request {
    /// The frame, with its `id`.
    frame: String,
    /// When the app stops waiting.
    deadline: Millis,
    /// Its timeout, for the error.
    timeout_ms: u64,
}

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

/// The socket's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// Socket opening.
    Opening,
    /// `auth` sent, waiting for `auth_ok`.
    Authenticating,
    Open,
    /// Between attempts.
    Waiting,
    Closed,
}

/// The client's whole state.
pub struct Core {
    url: String,
    options: Options,
    random: Box<dyn FnMut() -> f64>,
    phase: Phase,
    token: String,
    /// Failed attempts since the last `auth_ok`.
    attempt: u32,
    last_frame: Millis,
    next_id: u64,
    /// Sent and waiting for an answer.
    in_flight: SmallMap<u64, Request>,
    /// Made while disconnected, in order.
    queued: VecDeque<(u64, Request)>,
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

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("url", &self.url)
            .field("phase", &self.phase)
            .field("attempt", &self.attempt)
            .field("in_flight", &self.in_flight.len())
            .field("queued", &self.queued.len())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A client for the server at `url` (`ws://host/ws`); `random` returns uniform
    /// numbers in `[0, 1)` for the jitter.
    pub fn new(url: impl Into<String>, options: Options, random: Box<dyn FnMut() -> f64>) -> Self {
        Self {
            url: url.into(),
            options,
            random,
            phase: Phase::Idle,
            token: String::new(),
            attempt: 0,
            last_frame: 0,
            next_id: 1,
            in_flight: SmallMap::default(),
            queued: VecDeque::new(),
            rooms: Rooms::default(),
            joining: SmallMap::default(),
            joins_waiting: SmallMap::default(),
            leaving: SmallMap::default(),
            retries: SmallMap::default(),
        }
    }

    /// The state the app sees.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    fn socket_url(&self) -> String {
        if self.options.compress {
            let separator = if self.url.contains('?') { '&' } else { '?' };
            format!("{}{separator}compress=gzip", self.url)
        } else {
            self.url.clone()
        }
    }

    /// The app calls `connect()` with a token.
    pub fn connect(&mut self, token: String, now: Millis) -> Vec<Effect> {
        if matches!(
            self.phase,
            Phase::Opening | Phase::Authenticating | Phase::Open
        ) {
            return Vec::new();
        }
        self.attempt = 0;
        self.open(token, now)
    }

    /// After [`Effect::RetryAfter`]: the next attempt, with a (possibly fresh) token.
    pub fn reconnect(&mut self, token: String, now: Millis) -> Vec<Effect> {
        if self.phase != Phase::Waiting {
            return Vec::new();
        }
        self.open(token, now)
    }

    fn open(&mut self, token: String, now: Millis) -> Vec<Effect> {
        self.token = token;
        self.phase = Phase::Opening;
        self.last_frame = now;
        vec![
            Effect::State(State::Connecting),
            Effect::Open(self.socket_url()),
        ]
    }

    /// The socket opened: authenticate first.
    pub fn on_open(&mut self, now: Millis) -> Vec<Effect> {
        if self.phase != Phase::Opening {
            return Vec::new();
        }
        self.phase = Phase::Authenticating;
        self.last_frame = now;
        let mut auth = String::from(r#"{"type":"auth","token":"#);
        json::push_string(&mut auth, &self.token);
        auth.push('}');
        vec![Effect::Send(auth)]
    }

    /// The socket closed (or failed to open) with `code`.
    pub fn on_close(&mut self, code: u16, reason: &str, _now: Millis) -> Vec<Effect> {
        if !matches!(
            self.phase,
            Phase::Opening | Phase::Authenticating | Phase::Open
        ) {
            return Vec::new();
        }
        self.lost(Some(code), reason)
    }

    /// The connection is gone: fail what was in flight, then wait and retry, or stop.
    fn lost(&mut self, code: Option<u16>, reason: &str) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (id, _) in std::mem::take(&mut self.in_flight) {
            effects.push(Effect::Settle(id, Err(ClientError::Disconnected)));
        }
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
        let final_code = code.filter(|c| self.is_final(*c));
        let delay = match (final_code, self.options.reconnect) {
            (None, Some(backoff)) => backoff.delay(self.attempt, (self.random)()),
            _ => None,
        };
        match delay {
            Some(delay_ms) => {
                self.phase = Phase::Waiting;
                self.attempt += 1;
                effects.push(Effect::State(State::Reconnecting {
                    attempt: self.attempt,
                    delay_ms,
                }));
                effects.push(Effect::RetryAfter(delay_ms));
            }
            None => {
                let reason = if final_code.is_some() || self.options.reconnect.is_none() {
                    reason.to_owned()
                } else {
                    format!("{reason} (gave up after {} attempts)", self.attempt)
                };
                effects.extend(self.shut(code, reason));
            }
        }
        effects
    }

    /// Close codes after which reconnecting would not help (CONTRACT §8).
    fn is_final(&self, code: u16) -> bool {
        match code {
            4000 | 4003 | 4009 => true,
            4001 => !self.options.refreshable_token,
            _ => false,
        }
    }

    /// Ends for good: every request still waiting is rejected.
    fn shut(&mut self, code: Option<u16>, reason: String) -> Vec<Effect> {
        self.phase = Phase::Closed;
        let mut effects = Vec::new();
        let waiting = self
            .in_flight
            .keys()
            .copied()
            .chain(self.queued.iter().map(|(id, _)| *id))
            .chain(self.joins_waiting.values().flatten().map(|w| w.id))
            .chain(
                self.joining
                    .values()
                    .flat_map(|j| j.waiters.iter().map(|w| w.id)),
            )
            .collect::<Vec<_>>();
        self.in_flight.clear();
        self.queued.clear();
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
        for id in waiting {
            effects.push(Effect::Settle(id, Err(ClientError::Closed)));
        }
        effects.push(Effect::State(State::Closed { code, reason }));
        effects
    }

    /// Ends for good because the app's side failed (e.g. `getToken` threw): no socket is
    /// open at this point, so there is nothing to close.
    pub fn give_up(&mut self, reason: &str) -> Vec<Effect> {
        if self.phase == Phase::Closed {
            return Vec::new();
        }
        self.shut(None, reason.to_owned())
    }

    /// The app calls `close()`.
    pub fn close(&mut self) -> Vec<Effect> {
        if self.phase == Phase::Closed {
            return Vec::new();
        }
        let open = matches!(
            self.phase,
            Phase::Opening | Phase::Authenticating | Phase::Open
        );
        let mut effects = Vec::new();
        if open {
            effects.push(Effect::Close {
                code: 1000,
                reason: "client closed".into(),
            });
        }
        effects.extend(self.shut(Some(1000), "closed by the client".into()));
        // A later `connect()` starts afresh: the app closed, so it left every room.
        self.rooms = Rooms::default();
        effects
    }

    /// Time passed: the heartbeat watchdog and request timeouts.
    pub fn on_timer(&mut self, now: Millis) -> Vec<Effect> {
        let mut effects = Vec::new();
        for (id, request) in self.in_flight.extract_if(|_, r| r.deadline <= now) {
            effects.push(Effect::Settle(
                id,
                Err(ClientError::Timeout(request.timeout_ms)),
            ));
        }
        let mut kept = VecDeque::new();
        for (id, request) in std::mem::take(&mut self.queued) {
            if request.deadline <= now {
                effects.push(Effect::Settle(
                    id,
                    Err(ClientError::Timeout(request.timeout_ms)),
                ));
            } else {
                kept.push_back((id, request));
            }
        }
        self.queued = kept;
        self.expire_joins(now, &mut effects);
        self.retry_rejoins(now, &mut effects);
        let live = matches!(
            self.phase,
            Phase::Opening | Phase::Authenticating | Phase::Open
        );
        if live && now >= self.watchdog_deadline() {
            effects.push(Effect::Close {
                code: 4000,
                reason: "no heartbeat".into(),
            });
            effects.extend(self.lost(None, "no frame from the server within twice the heartbeat"));
        }
        effects
    }

    fn watchdog_deadline(&self) -> Millis {
        self.last_frame + 2 * self.options.heartbeat_interval_ms
    }

    /// When [`Self::on_timer`] should next run, if anything is waiting on the clock.
    pub fn next_deadline(&self) -> Option<Millis> {
        let live = matches!(
            self.phase,
            Phase::Opening | Phase::Authenticating | Phase::Open
        );
        let requests = self
            .in_flight
            .values()
            .chain(self.queued.iter().map(|(_, r)| r))
            .map(|r| r.deadline);
        let joins = self
            .joining
            .values()
            .flat_map(|j| &j.waiters)
            .chain(self.joins_waiting.values().flatten())
            .map(|w| w.deadline);
        let retries = self
            .retries
            .values()
            .filter(|_| self.phase == Phase::Open)
            .map(|(at, _)| *at);
        requests
            .chain(joins)
            .chain(retries)
            .chain(live.then(|| self.watchdog_deadline()))
            .min()
    }

    fn allocate(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// A request of any type: `payload` is the JSON text of an object holding its fields
    /// (empty or `null`: none). Returns the request id the answer will
    /// [`Effect::Settle`]. The server validates the fields (and answers `bad_request`); the
    /// SDK checks only what it must understand itself (the room of a `join` or `leave`),
    /// which keeps the protocol's typed decoders out of the browser.
    ///
    /// # Errors
    /// Settled at once with [`ClientError::InvalidRequest`] for a payload that is not an
    /// object, a type the SDK sends itself or a bad room name, [`ClientError::QueueFull`]
    /// when disconnected with a full queue, [`ClientError::Closed`] after the end.
    pub fn request(
        &mut self,
        kind: &str,
        payload: &str,
        timeout_ms: Option<u64>,
        now: Millis,
    ) -> (u64, Vec<Effect>) {
        let id = self.allocate();
        let invalid = |why: String| vec![Effect::Settle(id, Err(ClientError::InvalidRequest(why)))];
        let payload = payload.trim();
        let fields = if payload.is_empty() || payload == "null" {
            Some(Object::default())
        } else {
            Object::parse(payload)
        };
        let effects = match (kind, fields) {
            (_, None) => invalid("the payload must be a JSON object".into()),
            ("" | "auth" | "pong" | "ack", _) => {
                invalid(format!("`{kind}` is not a request the app sends"))
            }
            ("join" | "leave", Some(fields)) => match room_of(&fields) {
                Err(err) => vec![Effect::Settle(id, Err(err))],
                Ok(room) if kind == "join" => self.join(id, room, timeout_ms, now),
                Ok(room) => self.leave(id, &room, timeout_ms, now),
            },
            (_, Some(fields)) => {
                let frame = request_frame(kind, id, fields.members());
                self.submit(id, frame, timeout_ms, now)
            }
        };
        (id, effects)
    }

    fn submit(
        &mut self,
        id: u64,
        frame: String,
        timeout_ms: Option<u64>,
        now: Millis,
    ) -> Vec<Effect> {
        let timeout_ms = timeout_ms.unwrap_or(self.options.request_timeout_ms);
        let request = Request {
            frame,
            deadline: now.saturating_add(timeout_ms),
            timeout_ms,
        };
        match self.phase {
            Phase::Closed => vec![Effect::Settle(id, Err(ClientError::Closed))],
            Phase::Open => {
                let send = Effect::Send(request.frame.clone());
                self.in_flight.insert(id, request);
                vec![send]
            }
            _ if self.queued.len() >= self.options.offline_queue_limit => {
                vec![Effect::Settle(
                    id,
                    Err(ClientError::QueueFull(self.queued.len())),
                )]
            }
            _ => {
                self.queued.push_back((id, request));
                Vec::new()
            }
        }
    }

    /// Joins are remembered: after a reconnect every room is rejoined from the last chat
    /// the app got there. A join made while disconnected is settled by that rejoin. A join
    /// that fails (refused, or no answer in time) is forgotten.
    fn join(
        &mut self,
        id: u64,
        room: RoomName,
        timeout_ms: Option<u64>,
        now: Millis,
    ) -> Vec<Effect> {
        if self.phase == Phase::Closed {
            return vec![Effect::Settle(id, Err(ClientError::Closed))];
        }
        let timeout_ms = timeout_ms.unwrap_or(self.options.request_timeout_ms);
        let waiter = Waiter {
            id,
            deadline: now.saturating_add(timeout_ms),
            timeout_ms,
        };
        self.rooms.track(&room);
        if self.phase == Phase::Open {
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

    /// Rejects the joins that waited too long; a room whose every join failed so, and
    /// that the server never accepted, is forgotten.
    fn expire_joins(&mut self, now: Millis, effects: &mut Vec<Effect>) {
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

    /// Leaving forgets the room at once (no rejoin, no more of its chats).
    fn leave(
        &mut self,
        id: u64,
        room: &RoomName,
        timeout_ms: Option<u64>,
        now: Millis,
    ) -> Vec<Effect> {
        let tracked = self.rooms.untrack(room);
        self.retries.remove(room);
        let mut effects: Vec<Effect> = self
            .joins_waiting
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
            })
            .collect();
        if self.phase == Phase::Open {
            let frame = request_frame("leave", id, [("room", json::quote(room.as_str()).as_str())]);
            self.leaving.insert(id, room.clone());
            effects.extend(self.submit(id, frame, timeout_ms, now));
        } else if tracked {
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
        effects
    }

    /// A text frame from the server.
    pub fn on_frame(&mut self, text: &str, now: Millis) -> Vec<Effect> {
        self.last_frame = now;
        let mut effects = Vec::new();
        self.on_message(text, 0, now, &mut effects);
        effects
    }

    /// `depth`: how many envelopes (`compressed`, `batch_messages`) this message was in.
    fn on_message(&mut self, text: &str, depth: u8, now: Millis, effects: &mut Vec<Effect>) {
        // Anything but a JSON object is not the server we know: ignored, not surfaced.
        let Some(message) = Object::parse(text) else {
            return;
        };
        let kind = message.str("type").unwrap_or_default();
        match kind.as_ref() {
            "ping" => effects.push(Effect::Send(r#"{"type":"pong"}"#.to_owned())),
            "auth_ok" => {
                let was_open = self.phase == Phase::Open;
                self.phase = Phase::Open;
                self.attempt = 0;
                if !was_open {
                    // Rejoins and the queue go out before the app hears of the connection,
                    // so nothing its handlers send can overtake them.
                    self.resume(now, effects);
                    effects.push(Effect::State(State::Open));
                }
                effects.push(emit(&kind, text));
            }
            "reply" | "error" | "pong" if message.raw("id").is_some() => {
                self.on_answer(&kind, &message, text, now, effects);
            }
            // The server wraps at most twice (a compressed batch); deeper is not its doing.
            "compressed" if depth < MAX_ENVELOPES => {
                let inner = message
                    .str("data")
                    .and_then(|data| codec::inflate(&data, DEFAULT_INFLATE_LIMIT).ok());
                if let Some(inner) = inner {
                    self.on_message(&inner, depth + 1, now, effects);
                }
            }
            "batch_messages" if depth < MAX_ENVELOPES => {
                let inner = message.raw("messages").and_then(json::array);
                for item in inner.unwrap_or_default() {
                    self.on_message(item, depth + 1, now, effects);
                }
            }
            "compressed" | "batch_messages" => {}
            "chat" => {
                let room = message.str("room").and_then(|r| RoomName::new(r).ok());
                let id = message.str("id").and_then(|i| MessageId::new(i).ok());
                match (room, id) {
                    // Rooms the app is leaving: the app is done with them.
                    (Some(room), _) if self.leaving.values().any(|r| *r == room) => {}
                    // Rooms the app joined: each chat once, in order, across reconnects.
                    (Some(room), Some(id)) if self.rooms.contains(&room) => {
                        if self.rooms.accept(&room, &id) {
                            effects.push(emit(&kind, text));
                        }
                    }
                    // Rooms the server put the connection in (default rooms, the API).
                    _ => effects.push(emit(&kind, text)),
                }
            }
            _ => acknowledged(&kind, &message, text, effects),
        }
    }

    /// After `auth_ok`: rejoin every room from its position, then send what waited.
    fn resume(&mut self, now: Millis, effects: &mut Vec<Effect>) {
        let positions: Vec<(RoomName, Option<MessageId>)> = self
            .rooms
            .positions()
            .map(|(room, last)| (room.clone(), last.cloned()))
            .collect();
        for (room, since) in positions {
            let id = self.allocate();
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
        for (id, request) in std::mem::take(&mut self.queued) {
            if request.deadline <= now {
                effects.push(Effect::Settle(
                    id,
                    Err(ClientError::Timeout(request.timeout_ms)),
                ));
                continue;
            }
            effects.push(Effect::Send(request.frame.clone()));
            self.in_flight.insert(id, request);
        }
    }

    fn on_answer(
        &mut self,
        kind: &str,
        message: &Object<'_>,
        text: &str,
        now: Millis,
        effects: &mut Vec<Effect>,
    ) {
        let Some(id) = message.u64("id") else {
            // Not one of ours (the SDK numbers its requests).
            return acknowledged(kind, message, text, effects);
        };
        let outcome = match kind {
            "error" => Err(ClientError::Server {
                code: message
                    .str("code")
                    .and_then(|code| ErrorCode::ALL.into_iter().find(|c| c.as_str() == code))
                    .unwrap_or(ErrorCode::Internal),
                message: message.str("message").unwrap_or_default().into_owned(),
            }),
            "pong" => Ok(text.to_owned()),
            _ => Ok(message.raw("data").unwrap_or("null").to_owned()),
        };
        if let Some(joining) = self.joining.remove(&id) {
            self.joined(joining, &outcome, now, effects);
        } else if self.in_flight.remove(&id).is_some() {
            // A leave's room is done with once the server has answered it.
            self.leaving.remove(&id);
            effects.push(Effect::Settle(id, outcome));
        }
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
    fn retry_rejoins(&mut self, now: Millis, effects: &mut Vec<Effect>) {
        if self.phase != Phase::Open {
            return;
        }
        for (room, (_, attempt)) in self.retries.extract_if(|_, (at, _)| *at <= now) {
            let id = self.allocate();
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

/// A message for the app.
fn emit(kind: &str, text: &str) -> Effect {
    Effect::Emit(Message {
        kind: kind.to_owned(),
        json: text.to_owned(),
    })
}

/// Hands a message to the app, then acknowledges it if the sender asked.
fn acknowledged(kind: &str, message: &Object<'_>, text: &str, effects: &mut Vec<Effect>) {
    effects.push(emit(kind, text));
    if let Some(message_id) = message
        .is_true("_ack")
        .then(|| message.str("_messageId"))
        .flatten()
    {
        let mut frame = String::from(r#"{"type":"ack","messageId":"#);
        json::push_string(&mut frame, &message_id);
        frame.push('}');
        effects.push(Effect::Send(frame));
    }
}

/// `{"type":kind,"id":id,...fields}`; `fields` are raw JSON texts, and any `type` or `id`
/// among them is the SDK's to set.
fn request_frame<'a>(
    kind: &str,
    id: u64,
    fields: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut frame = String::from(r#"{"type":"#);
    json::push_string(&mut frame, kind);
    frame.push_str(",\"id\":");
    frame.push_str(&id.to_string());
    for (key, raw) in fields {
        if key != "type" && key != "id" {
            frame.push(',');
            json::push_string(&mut frame, key);
            frame.push(':');
            frame.push_str(raw);
        }
    }
    frame.push('}');
    frame
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
fn room_of(payload: &Object<'_>) -> Result<RoomName, ClientError> {
    let name = payload
        .str("room")
        .ok_or_else(|| ClientError::InvalidRequest("`room` must be a string".into()))?;
    RoomName::new(name).map_err(|e| ClientError::InvalidRequest(format!("`room`: {e}")))
}

#[cfg(test)]
mod tests;
