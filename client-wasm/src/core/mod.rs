//! The SDK's core: a sans-I/O state machine. The wasm façade feeds it what happens (the
//! app's calls, socket events, frames, the clock) and carries out the [`Effect`]s it
//! returns, in order (open or close a socket, send a frame, hand a message to the app,
//! settle a promise, wait before reconnecting). Nothing here touches the browser, so all
//! of it is tested natively with `cargo test`, clock and randomness injected.
//!
//! [`Core`] holds the app's [`Options`] and one owner of each part of the state, and
//! sequences the effects across them when one event concerns several (a drop, the end,
//! `auth_ok`, a tick of the clock). The parts: `connection` (phase, token, backoff
//! attempts, heartbeat watchdog), `requests` (ids, requests in flight, the offline queue),
//! `membership` (rooms with their recovery cursors, joins, leaves, rejoin retries).
//! `dispatch` routes each server frame to them; `types` is the façade's side of the
//! contract.

mod backoff;
mod connection;
mod dispatch;
pub mod json;
mod membership;
mod requests;
mod rooms;
pub(crate) mod small_map;
mod types;

pub use self::backoff::Backoff;
use self::connection::{Connection, Phase};
use self::json::Object;
use self::membership::{Membership, room_of};
use self::requests::{Ids, Requests, request_frame};
pub use self::types::{Effect, Message, Options, State};
use crate::error::ClientError;
use roomcast_protocol::RoomName;

/// Milliseconds (the façade's `Date.now()`; any monotonic source in tests).
pub type Millis = u64;

/// A wait for a browser timer: browsers (and gloo) take a signed 32-bit count of
/// milliseconds, and anything longer would fire at once.
pub fn timer_delay(ms: u64) -> u32 {
    u32::try_from(ms.min(i32::MAX.unsigned_abs().into())).unwrap_or(0)
}

/// The client's whole state.
pub struct Core {
    options: Options,
    connection: Connection,
    ids: Ids,
    requests: Requests,
    membership: Membership,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("url", &self.connection.url())
            .field("phase", &self.connection.phase())
            .field("attempt", &self.connection.attempt())
            .field("in_flight", &self.requests.in_flight_len())
            .field("queued", &self.requests.queued_len())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A client for the server at `url` (`ws://host/ws`); `random` returns uniform
    /// numbers in `[0, 1)` for the jitter.
    pub fn new(url: impl Into<String>, options: Options, random: Box<dyn FnMut() -> f64>) -> Self {
        Self {
            options,
            connection: Connection::new(url.into(), random),
            ids: Ids::default(),
            requests: Requests::default(),
            membership: Membership::default(),
        }
    }

    /// The state the app sees.
    pub fn is_open(&self) -> bool {
        self.connection.phase() == Phase::Open
    }

    /// The app calls `connect()` with a token.
    pub fn connect(&mut self, token: String, now: Millis) -> Vec<Effect> {
        self.connection.connect(token, now, self.options.compress)
    }

    /// After [`Effect::RetryAfter`]: the next attempt, with a (possibly fresh) token.
    pub fn reconnect(&mut self, token: String, now: Millis) -> Vec<Effect> {
        self.connection.reconnect(token, now, self.options.compress)
    }

    /// The socket opened: authenticate first.
    pub fn on_open(&mut self, now: Millis) -> Vec<Effect> {
        self.connection.on_open(now)
    }

    /// The socket closed (or failed to open) with `code`.
    pub fn on_close(&mut self, code: u16, reason: &str, _now: Millis) -> Vec<Effect> {
        if !self.connection.is_live() {
            return Vec::new();
        }
        self.lost(Some(code), reason)
    }

    /// The connection is gone: fail what was in flight, then wait and retry, or stop.
    fn lost(&mut self, code: Option<u16>, reason: &str) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.requests.disconnected(&mut effects);
        self.membership.disconnected(&mut effects);
        match self.connection.next_attempt(code, reason, &self.options) {
            Ok(waiting) => effects.extend(waiting),
            Err(reason) => effects.extend(self.shut(code, reason)),
        }
        effects
    }

    /// Ends for good: every request still waiting is rejected.
    fn shut(&mut self, code: Option<u16>, reason: String) -> Vec<Effect> {
        self.connection.end();
        let mut waiting = self.requests.drain();
        waiting.extend(self.membership.drain());
        let mut effects: Vec<Effect> = waiting
            .into_iter()
            .map(|id| Effect::Settle(id, Err(ClientError::Closed)))
            .collect();
        effects.push(Effect::State(State::Closed { code, reason }));
        effects
    }

    /// Ends for good because the app's side failed (e.g. `getToken` threw): no socket is
    /// open at this point, so there is nothing to close.
    pub fn give_up(&mut self, reason: &str) -> Vec<Effect> {
        if self.connection.phase() == Phase::Closed {
            return Vec::new();
        }
        self.shut(None, reason.to_owned())
    }

    /// The app calls `close()`.
    pub fn close(&mut self) -> Vec<Effect> {
        if self.connection.phase() == Phase::Closed {
            return Vec::new();
        }
        let open = self.connection.is_live();
        let mut effects = Vec::new();
        if open {
            effects.push(Effect::Close {
                code: 1000,
                reason: "client closed".into(),
            });
        }
        effects.extend(self.shut(Some(1000), "closed by the client".into()));
        // A later `connect()` starts afresh: the app closed, so it left every room.
        self.membership.forget_rooms();
        effects
    }

    /// Time passed: the heartbeat watchdog and request timeouts.
    pub fn on_timer(&mut self, now: Millis) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.requests.expire(now, &mut effects);
        self.membership.expire(now, &mut effects);
        let phase = self.connection.phase();
        self.membership
            .retry_rejoins(now, phase, &mut self.ids, &mut effects);
        let watchdog = self.connection.watchdog(self.options.heartbeat_interval_ms);
        if watchdog.is_some_and(|deadline| now >= deadline) {
            effects.push(Effect::Close {
                code: 4000,
                reason: "no heartbeat".into(),
            });
            effects.extend(self.lost(None, "no frame from the server within twice the heartbeat"));
        }
        effects
    }

    /// When [`Self::on_timer`] should next run, if anything is waiting on the clock.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.requests
            .deadlines()
            .chain(self.membership.deadlines(self.connection.phase()))
            .chain(self.connection.watchdog(self.options.heartbeat_interval_ms))
            .min()
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
        let id = self.ids.allocate();
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
        self.requests.submit(
            id,
            frame,
            timeout_ms,
            now,
            self.connection.phase(),
            self.options.offline_queue_limit,
        )
    }

    /// Joins are settled by [`Membership`]; after the end they fail at once.
    fn join(
        &mut self,
        id: u64,
        room: RoomName,
        timeout_ms: Option<u64>,
        now: Millis,
    ) -> Vec<Effect> {
        let phase = self.connection.phase();
        if phase == Phase::Closed {
            return vec![Effect::Settle(id, Err(ClientError::Closed))];
        }
        let timeout_ms = timeout_ms.unwrap_or(self.options.request_timeout_ms);
        self.membership.join(id, room, timeout_ms, now, phase)
    }

    /// A leave is a request like any other when open; otherwise [`Membership`] settles it.
    fn leave(
        &mut self,
        id: u64,
        room: &RoomName,
        timeout_ms: Option<u64>,
        now: Millis,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let phase = self.connection.phase();
        if let Some(frame) = self.membership.leave(id, room, phase, &mut effects) {
            effects.extend(self.submit(id, frame, timeout_ms, now));
        }
        effects
    }

    /// After `auth_ok`: rejoin every room from its position, then send what waited.
    fn resume(&mut self, now: Millis, effects: &mut Vec<Effect>) {
        self.membership.rejoin_all(&mut self.ids, effects);
        self.requests.flush(now, effects);
    }
}

#[cfg(test)]
mod tests;
