//! The [`Hub`] owns connection, user and room state.
//!
//! It is a cheap-clone handle over `Arc<Shared>`. State lives in sharded maps (`DashMap`)
//! plus one lock per room and per connection, so there is no global lock: a broadcast to
//! one room takes that room's read lock and nothing else. Locks are std locks held only
//! for in-memory work and never across an `.await`; fan-out uses `try_send` into each
//! connection's bounded queue, so a slow client costs its senders nothing (it is closed
//! with 4029 when its queue overflows). We chose shared state over an actor because an
//! actor would serialize every broadcast through one task, which is the global lock we
//! want to avoid. Lock order: a map shard, then a room, then a connection's state.

mod acks;
mod batch;
mod conn;
mod messaging;
mod room;
mod topics;

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use dashmap::DashMap;
use roomcast_protocol::{
    ClientId, CloseCode, ErrorCode, MessageId, RoomName, ServerMessage, Timestamp, User, UserId,
};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

pub use self::acks::AckOutcome;
use self::batch::Batch;

pub(crate) use self::conn::SendError;
pub use self::conn::{ConnHandle, ConnectionInfo};
use self::room::{Presence, Room};
pub use self::room::{RoomClient, RoomInfo, RoomOptions};
use crate::ServerError;
use crate::auth::{Authenticator, Identity};
use crate::broker::{Broker, Delivery, LocalDelivery, Target};
use crate::clock::now_ms;
use crate::config::Config;
use crate::handler::Handler;
use crate::metrics::Metrics;
use crate::store::{NewChat, Store, StoredChat};

/// Serializes a server message once, into the shared frame every recipient gets.
pub fn frame(message: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(message.to_json())
}

/// The state every connection, handler and API route shares.
#[derive(Clone, Debug)]
pub struct Hub {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: Arc<Config>,
    auth: Authenticator,
    metrics: Metrics,
    broker: Arc<dyn Broker>,
    store: Arc<dyn Store>,
    conns: DashMap<ClientId, Arc<ConnHandle>>,
    users: DashMap<UserId, Vec<Arc<ConnHandle>>>,
    rooms: DashMap<RoomName, Arc<Room>>,
    /// Connections open or being upgraded, for the total limit.
    open: AtomicUsize,
    /// Serializes what must not interleave for one user (pending deliveries on connect
    /// against live private messages and notifications, subscription loading), striped
    /// by user id: never one lock for everyone.
    user_locks: Box<[tokio::sync::Mutex<()>]>,
    /// Topic subscriptions of connected users: user → topic → keys.
    subs: DashMap<UserId, HashMap<String, Arc<HashSet<String>>>>,
    /// Connected subscribers of each topic.
    topics: DashMap<String, HashSet<UserId>>,
    /// Rooms' pending `batch_messages`.
    batches: DashMap<RoomName, Arc<tokio::sync::Mutex<Batch>>>,
    /// The application's handler, if any.
    handler: OnceLock<Arc<dyn Handler>>,
    shutdown: CancellationToken,
    started: Instant,
}

/// Stripes of [`Shared::user_locks`].
const USER_LOCK_STRIPES: usize = 64;

/// A reserved slot under the total connection limit, released on drop.
#[derive(Debug)]
pub struct ConnectionPermit {
    hub: Hub,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.hub.shared.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a new connection's task receives from [`Hub::register`].
#[derive(Debug)]
pub(crate) struct Registration {
    pub handle: Arc<ConnHandle>,
    pub outbox: mpsc::Receiver<Utf8Bytes>,
    pub close_rx: oneshot::Receiver<Option<CloseCode>>,
}

/// The result of a join.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    /// The room.
    pub room: RoomName,
    /// Whether the `since` position could be honoured (false when history is not kept
    /// that far back).
    pub recovered: bool,
    /// Messages replayed after `user_list`.
    pub replayed: usize,
}

impl Hub {
    /// A hub for `config`, fanning out through `broker`.
    pub fn new(config: Config, broker: Arc<dyn Broker>, store: Arc<dyn Store>) -> Self {
        let auth = Authenticator::new(&config.jwt_secret, config.allow_tokens_without_expiry);
        Self {
            shared: Arc::new(Shared {
                config: Arc::new(config),
                auth,
                metrics: Metrics::new(),
                broker,
                store,
                conns: DashMap::new(),
                users: DashMap::new(),
                rooms: DashMap::new(),
                open: AtomicUsize::new(0),
                user_locks: (0..USER_LOCK_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                subs: DashMap::new(),
                topics: DashMap::new(),
                batches: DashMap::new(),
                handler: OnceLock::new(),
                shutdown: CancellationToken::new(),
                started: Instant::now(),
            }),
        }
    }

    /// Installs the application's handler (custom messages, connect and close events).
    ///
    /// # Errors
    /// [`ServerError::Config`] when a handler is already installed.
    pub fn set_handler(&self, handler: Arc<dyn Handler>) -> Result<(), ServerError> {
        self.shared
            .handler
            .set(handler)
            .map_err(|_| ServerError::Config("an application handler is already set".into()))
    }

    /// The application's handler, if any.
    pub fn handler(&self) -> Option<&Arc<dyn Handler>> {
        self.shared.handler.get()
    }

    /// The lock that orders deliveries to `user` against its connects.
    pub(crate) fn user_lock(&self, user: &UserId) -> &tokio::sync::Mutex<()> {
        use std::hash::{BuildHasher, RandomState};
        static STRIPES: OnceLock<RandomState> = OnceLock::new();
        let hash = STRIPES
            .get_or_init(RandomState::new)
            .hash_one(user.as_str());
        let stripe = usize::try_from(hash % USER_LOCK_STRIPES as u64).unwrap_or(0);
        &self.shared.user_locks[stripe]
    }

    /// Recreates the persistent rooms the store keeps.
    ///
    /// # Errors
    /// Store failures.
    pub async fn restore_rooms(&self) -> Result<usize, ServerError> {
        let rooms = self.shared.store.rooms().await?;
        let count = rooms.len();
        for (name, options) in rooms {
            self.insert_api_room(&name, options);
        }
        Ok(count)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Token signing and verification.
    pub fn auth(&self) -> &Authenticator {
        &self.shared.auth
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Cancelled when the server shuts down; every connection loop selects on it.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shared.shutdown
    }

    /// Reserves a slot under the total connection limit, `None` when full or shutting down.
    pub fn try_reserve(&self) -> Option<ConnectionPermit> {
        if self.shared.shutdown.is_cancelled() {
            return None;
        }
        let max = self.shared.config.max_connections;
        self.shared
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnectionPermit { hub: self.clone() })
    }

    /// Registers a freshly upgraded connection.
    pub(crate) fn register(&self, remote: SocketAddr, compress: bool) -> Registration {
        let id = ClientId::new(uuid::Uuid::new_v4().simple().to_string())
            .unwrap_or_else(|e| unreachable!("uuids are valid client ids: {e}"));
        let (tx, outbox) = mpsc::channel(self.shared.config.send_queue);
        let (close_tx, close_rx) = oneshot::channel();
        let handle = Arc::new(ConnHandle::new(
            id.clone(),
            remote,
            compress,
            now_ms(),
            tx,
            close_tx,
        ));
        self.shared.conns.insert(id, handle.clone());
        self.shared.metrics.connections.inc();
        Registration {
            handle,
            outbox,
            close_rx,
        }
    }

    /// Forgets a connection: leaves its rooms (announcing `user_leave` where it was the
    /// user's last connection) and drops it from every index.
    pub(crate) async fn unregister(&self, conn: &Arc<ConnHandle>) {
        let (rooms, user) = {
            let mut state = conn.state();
            state.closed = true;
            // Dropping the senders tells every waiting acknowledgement "disconnected".
            state.acks.clear();
            (std::mem::take(&mut state.rooms), state.user.clone())
        };
        for room in rooms {
            self.leave_room(conn, &room).await;
        }
        if let Some(user) = user {
            let mut emptied = false;
            if let Some(mut list) = self.shared.users.get_mut(&user.user_id) {
                list.retain(|c| !Arc::ptr_eq(c, conn));
                emptied = list.is_empty();
            }
            if emptied {
                let _turn = self.user_lock(&user.user_id).lock().await;
                if self
                    .shared
                    .users
                    .remove_if(&user.user_id, |_, list| list.is_empty())
                    .is_some()
                {
                    self.unload_subscriptions(&user.user_id);
                }
            }
            self.shared.metrics.authenticated.dec();
        }
        if self.shared.conns.remove(&conn.id).is_some() {
            self.shared.metrics.connections.dec();
        }
    }

    /// Attaches a verified identity to a connection that had none and queues the
    /// `auth_ok` that `welcome` builds before anything addressed to the user can reach
    /// the connection. The caller holds the user's lock (see [`Self::user_lock`]).
    ///
    /// # Errors
    /// `limit_exceeded` when the user already has the per-user limit of connections.
    pub(crate) fn authenticate(
        &self,
        conn: &Arc<ConnHandle>,
        identity: &Identity,
        welcome: impl FnOnce(&User) -> ServerMessage,
    ) -> Result<Arc<User>, ServerError> {
        let user = Arc::new(identity.user.clone());
        {
            let mut list = self.shared.users.entry(user.user_id.clone()).or_default();
            if list.len() >= self.shared.config.max_connections_per_user {
                drop(list);
                self.shared
                    .users
                    .remove_if(&user.user_id, |_, list| list.is_empty());
                return Err(ServerError::request(
                    ErrorCode::LimitExceeded,
                    format!(
                        "user {} already has {} connections (the limit)",
                        user.user_id, self.shared.config.max_connections_per_user
                    ),
                ));
            }
            let mut state = conn.state();
            state.user = Some(user.clone());
            state.expires_at = identity.expires_at;
            drop(state);
            // Queued while the user's map entry is locked: deliveries to the user (and to
            // everyone) walk that map, so none of them can overtake `auth_ok`.
            self.send(conn, &welcome(&user));
            list.push(conn.clone());
        }
        self.shared.metrics.authenticated.inc();
        Ok(user)
    }

    /// Refreshes the token of an authenticated connection.
    ///
    /// # Errors
    /// `forbidden` when the new token is for another user.
    pub(crate) fn refresh(
        &self,
        conn: &ConnHandle,
        identity: &Identity,
    ) -> Result<Arc<User>, ServerError> {
        let mut state = conn.state();
        let current = state.user.clone().ok_or_else(|| {
            ServerError::request(ErrorCode::NotAuthenticated, "not authenticated")
        })?;
        if current.user_id != identity.user.user_id {
            return Err(ServerError::request(
                ErrorCode::Forbidden,
                "a token refresh must be for the same user",
            ));
        }
        state.expires_at = identity.expires_at;
        Ok(current)
    }

    /// Queues one message for one connection.
    pub(crate) fn send(&self, conn: &ConnHandle, message: &ServerMessage) {
        self.send_frame(conn, &frame(message));
    }

    /// Queues one frame for one connection, compressed if it asked and the frame is big.
    fn send_frame(&self, conn: &ConnHandle, frame: &Utf8Bytes) -> bool {
        self.send_outgoing(
            conn,
            &Outgoing::new(frame.clone(), self.config().compression_threshold),
        )
    }

    fn send_outgoing(&self, conn: &ConnHandle, outgoing: &Outgoing) -> bool {
        match conn.send(outgoing.for_conn(conn)) {
            Ok(()) => true,
            Err(SendError::Full) => {
                self.shared.metrics.queue_drops.inc();
                warn!(client = %conn.id, "send queue full, closing as slow consumer");
                false
            }
            Err(SendError::Closed) => false,
        }
    }

    /// Joins `conn` to `room`, creating the room on first join. The joiner's `user_list`
    /// is queued under the room lock, so it precedes every later message of the room.
    ///
    /// # Errors
    /// `not_authenticated`, `limit_exceeded` (rooms per connection), `forbidden` (room
    /// roles), `room_full`, or `not_found` when the connection is closing.
    pub async fn join(
        &self,
        conn: &Arc<ConnHandle>,
        name: &RoomName,
        since: Option<&MessageId>,
    ) -> Result<Joined, ServerError> {
        let max_rooms = self.shared.config.max_rooms_per_connection;
        let (user, already) = {
            let mut state = conn.state();
            let user = state.user.clone().ok_or_else(|| {
                ServerError::request(ErrorCode::NotAuthenticated, "not authenticated")
            })?;
            if state.closed {
                return Err(ServerError::request(
                    ErrorCode::NotFound,
                    "connection is closing",
                ));
            }
            let already = state.rooms.contains(name);
            if !already {
                if state.rooms.len() >= max_rooms {
                    return Err(ServerError::request(
                        ErrorCode::LimitExceeded,
                        format!("a connection may be in at most {max_rooms} rooms"),
                    ));
                }
                state.rooms.insert(name.clone());
            }
            (user, already)
        };
        let mut joined = Joined {
            room: name.clone(),
            recovered: false,
            replayed: 0,
        };
        let outcome = loop {
            let room = self.room_or_create(name);
            // With `since`, hold the room's sequencer from entering until the replay is
            // queued: every chat is either stored before (and replayed) or delivered after
            // (live), never both and never neither.
            let turn = match since {
                Some(_) => Some(room.sequencer.lock().await),
                None => None,
            };
            match self.enter(&room, conn, &user, already) {
                Err(Retry) => continue,
                Ok(Err(err)) => break Err(err),
                Ok(Ok(announce)) => {
                    if let Some(since) = since {
                        (joined.replayed, joined.recovered) = self.replay(conn, name, since).await;
                    }
                    drop(turn);
                    break Ok(announce);
                }
            }
        };
        let announce = match outcome {
            Ok(announce) => announce,
            Err(err) => {
                conn.state().rooms.remove(name);
                self.remove_if_empty(name);
                return Err(err);
            }
        };
        if conn.state().closed {
            // The connection closed while joining; undo so no dead member stays behind.
            self.leave_room(conn, name).await;
            return Err(ServerError::request(
                ErrorCode::NotFound,
                "connection is closing",
            ));
        }
        if announce {
            let message = ServerMessage::UserJoin {
                room: name.clone(),
                user: (*user).clone(),
                timestamp: now_ms(),
            };
            self.publish_quietly(Delivery {
                target: Target::Room(name.clone()),
                except: Some(conn.id.clone()),
                frame: frame(&message),
            })
            .await;
        }
        Ok(joined)
    }

    /// Queues the stored chat of `room` newer than `since` (at most the replay limit, the
    /// newest ones). Returns how many and whether that was everything.
    async fn replay(&self, conn: &ConnHandle, room: &RoomName, since: &MessageId) -> (usize, bool) {
        let limit = self.config().replay_limit;
        match self
            .shared
            .store
            .chat_since(room, since, limit.saturating_add(1))
            .await
        {
            Ok(mut items) => {
                let complete = items.len() <= limit as usize;
                if !complete {
                    items.remove(0);
                }
                let count = items.len();
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

    fn room_or_create(&self, name: &RoomName) -> Arc<Room> {
        self.shared
            .rooms
            .entry(name.clone())
            .or_insert_with(|| {
                self.shared.metrics.rooms.inc();
                Arc::new(Room::new(
                    name.clone(),
                    RoomOptions::default(),
                    now_ms(),
                    false,
                ))
            })
            .clone()
    }

    /// Adds the member under the room's write lock and queues its `user_list`. Returns
    /// whether others should get `user_join`.
    fn enter(
        &self,
        room: &Room,
        conn: &Arc<ConnHandle>,
        user: &Arc<User>,
        already: bool,
    ) -> Result<Result<bool, ServerError>, Retry> {
        let options = room.options();
        let limit = self.shared.config.presence_limit;
        let mut members = room.members_mut();
        if members.removed {
            return Err(Retry);
        }
        if !already {
            if !options.roles.is_empty() && !options.roles.iter().any(|r| user.has_role(r)) {
                return Ok(Err(ServerError::request(
                    ErrorCode::Forbidden,
                    format!(
                        "room {} is restricted to roles {:?}",
                        room.name, options.roles
                    ),
                )));
            }
            if options
                .max_clients
                .is_some_and(|max| members.conns.len() >= max)
            {
                return Ok(Err(ServerError::request(
                    ErrorCode::RoomFull,
                    format!("room {} is full", room.name),
                )));
            }
        }
        let mut first = false;
        if !already {
            members.conns.insert(conn.id.clone(), conn.clone());
            let seq = members.next_seq;
            let presence = members
                .users
                .entry(user.user_id.clone())
                .or_insert_with(|| {
                    first = true;
                    Presence {
                        user: user.clone(),
                        connections: 0,
                        seq,
                    }
                });
            presence.connections += 1;
            if first {
                members.next_seq += 1;
            }
        }
        let list = ServerMessage::UserList {
            room: room.name.clone(),
            users: members.user_list(limit),
            count: members.users.len() as u64,
            timestamp: now_ms(),
        };
        self.send(conn, &list);
        Ok(Ok(first
            && options.presence
            && members.users.len() <= limit))
    }

    /// Removes `conn` from `room` (the connection's own room set is the caller's job).
    async fn leave_room(&self, conn: &ConnHandle, name: &RoomName) {
        let Some(room) = self.shared.rooms.get(name).map(|r| r.clone()) else {
            return;
        };
        let options = room.options();
        let left = {
            let mut members = room.members_mut();
            if members.conns.remove(&conn.id).is_none() {
                return;
            }
            let user_id = conn.user().map(|u| u.user_id.clone());
            let mut left = None;
            if let Some(user_id) = user_id
                && let Some(presence) = members.users.get_mut(&user_id)
            {
                presence.connections -= 1;
                if presence.connections == 0 {
                    left = members.users.remove(&user_id).map(|p| p.user);
                }
            }
            left.filter(|_| {
                options.presence && members.users.len() < self.shared.config.presence_limit
            })
        };
        if let Some(user) = left {
            let message = ServerMessage::UserLeave {
                room: name.clone(),
                user: (*user).clone(),
                timestamp: now_ms(),
            };
            self.publish_quietly(Delivery {
                target: Target::Room(name.clone()),
                except: None,
                frame: frame(&message),
            })
            .await;
        }
        self.remove_if_empty(name);
    }

    /// Leaves a room.
    ///
    /// # Errors
    /// `not_member` when the connection is not in it.
    pub async fn leave(&self, conn: &ConnHandle, name: &RoomName) -> Result<(), ServerError> {
        if !conn.state().rooms.remove(name) {
            return Err(ServerError::request(
                ErrorCode::NotMember,
                format!("not a member of room {name}"),
            ));
        }
        self.leave_room(conn, name).await;
        Ok(())
    }

    /// Drops a room that has no member and was created by a join (API rooms stay).
    fn remove_if_empty(&self, name: &RoomName) {
        let removed = self.shared.rooms.remove_if(name, |_, room| {
            if room.is_api_created() {
                return false;
            }
            let mut members = room.members_mut();
            if members.conns.is_empty() {
                members.removed = true;
                true
            } else {
                false
            }
        });
        if removed.is_some() {
            self.shared.metrics.rooms.dec();
        }
    }

    /// Accepts a chat message from a member and delivers it to every member, the sender
    /// included.
    ///
    /// # Errors
    /// `too_large` when `content` is over the limit, `not_member` when the sender is not
    /// in the room.
    pub async fn chat(
        &self,
        conn: &ConnHandle,
        room: &RoomName,
        content: Value,
    ) -> Result<(MessageId, Timestamp), ServerError> {
        self.check_content(&content)?;
        let user = {
            let state = conn.state();
            if !state.rooms.contains(room) {
                return Err(ServerError::request(
                    ErrorCode::NotMember,
                    format!("join room {room} before chatting in it"),
                ));
            }
            state.user.clone().ok_or_else(|| {
                ServerError::request(ErrorCode::NotAuthenticated, "not authenticated")
            })?
        };
        let Some(state) = self.shared.rooms.get(room).map(|r| r.clone()) else {
            return Err(ServerError::request(
                ErrorCode::NotMember,
                format!("join room {room} before chatting in it"),
            ));
        };
        // One chat at a time per room: storage (which assigns the id) and delivery happen
        // in the same order, which is what lets `join` with `since` meet live traffic
        // without a gap.
        let _turn = state.sequencer.lock().await;
        let chat = NewChat {
            room: room.clone(),
            from: (*user).clone(),
            message: content,
            timestamp: now_ms(),
        };
        // Persist before deliver: nobody sees a message the history could lose.
        let stored = self.shared.store.append_chat(&chat).await?;
        let (id, timestamp) = (stored.id.clone(), stored.timestamp);
        self.publish(Delivery {
            target: Target::Room(room.clone()),
            except: None,
            frame: frame(&chat_message(stored)),
        })
        .await?;
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
        let items = self.shared.store.chat_history(room, limit, before).await?;
        Ok(items.into_iter().map(chat_message).collect())
    }

    fn check_content(&self, content: &Value) -> Result<(), ServerError> {
        let max = self.shared.config.max_content_bytes;
        let mut counter = ByteCounter(0);
        // Counting bytes cannot fail.
        let _ = serde_json::to_writer(&mut counter, content);
        if counter.0 > max {
            return Err(ServerError::request(
                ErrorCode::TooLarge,
                format!("content is {} bytes, the limit is {max}", counter.0),
            ));
        }
        Ok(())
    }

    /// Publishes a delivery through the broker.
    ///
    /// # Errors
    /// [`ServerError::Broker`] when the broker fails.
    pub async fn publish(&self, delivery: Delivery) -> Result<usize, ServerError> {
        self.shared.broker.publish(delivery, self).await
    }

    /// Publishes a best-effort notice (presence); a failure is logged.
    async fn publish_quietly(&self, delivery: Delivery) {
        if let Err(err) = self.publish(delivery).await {
            warn!(cause = %err, "presence notice not delivered");
        }
    }

    /// Publishes an application message (a JSON object with a string `type`) to `target`.
    ///
    /// # Errors
    /// `bad_request` when `message` is not such an object; broker failures.
    pub async fn broadcast(&self, target: Target, message: &Value) -> Result<usize, ServerError> {
        let frame = app_frame(message)?;
        self.publish(Delivery {
            target,
            except: None,
            frame,
        })
        .await
    }

    /// Sends an application message to one connection.
    ///
    /// # Errors
    /// `not_found` for an unknown client, `bad_request` for a bad message.
    pub fn send_to_client(&self, id: &ClientId, message: &Value) -> Result<(), ServerError> {
        let frame = app_frame(message)?;
        let conn = self.authenticated_connection(id)?;
        if self.send_frame(&conn, &frame) {
            Ok(())
        } else {
            Err(ServerError::request(
                ErrorCode::NotFound,
                format!("client {id} is disconnecting"),
            ))
        }
    }

    /// A connection by id.
    ///
    /// # Errors
    /// `not_found`.
    pub fn connection(&self, id: &ClientId) -> Result<Arc<ConnHandle>, ServerError> {
        self.shared
            .conns
            .get(id)
            .map(|c| c.clone())
            .ok_or_else(|| ServerError::request(ErrorCode::NotFound, format!("no connection {id}")))
    }

    /// An authenticated connection by id: the API does not message or seat a connection
    /// that has not said who it is.
    ///
    /// # Errors
    /// `not_found`, also for a connection still authenticating.
    pub fn authenticated_connection(&self, id: &ClientId) -> Result<Arc<ConnHandle>, ServerError> {
        let conn = self.connection(id)?;
        if conn.user().is_none() {
            return Err(ServerError::request(
                ErrorCode::NotFound,
                format!("connection {id} has not authenticated"),
            ));
        }
        Ok(conn)
    }

    /// Removes a member on the application's behalf (`DELETE /api/rooms/...`): it leaves
    /// like any member, and since it did not ask, it gets a `user_leave` about itself.
    ///
    /// # Errors
    /// `not_member`.
    pub async fn remove_member(
        &self,
        conn: &ConnHandle,
        name: &RoomName,
    ) -> Result<(), ServerError> {
        self.leave(conn, name).await?;
        if let Some(user) = conn.user() {
            let notice = ServerMessage::UserLeave {
                room: name.clone(),
                user: (*user).clone(),
                timestamp: now_ms(),
            };
            self.send(conn, &notice);
        }
        Ok(())
    }

    /// Every connection (or only authenticated ones), oldest first.
    pub fn connections(&self, active_only: bool) -> Vec<ConnectionInfo> {
        let mut list: Vec<ConnectionInfo> = self
            .shared
            .conns
            .iter()
            .map(|c| c.info())
            .filter(|info| !active_only || info.authenticated)
            .collect();
        list.sort_by(|a, b| {
            a.connected_at
                .cmp(&b.connected_at)
                .then_with(|| a.client_id.cmp(&b.client_id))
        });
        list
    }

    /// Closes one connection with 4000.
    ///
    /// # Errors
    /// `not_found`.
    pub fn disconnect(&self, id: &ClientId) -> Result<(), ServerError> {
        self.connection(id)?.close(CloseCode::Disconnected);
        Ok(())
    }

    /// Closes every connection with 4000; returns how many.
    pub fn disconnect_all(&self) -> usize {
        let all: Vec<Arc<ConnHandle>> = self.shared.conns.iter().map(|c| c.clone()).collect();
        for conn in &all {
            conn.close(CloseCode::Disconnected);
        }
        all.len()
    }

    /// Creates a room through the API, or updates the options of an existing one (which
    /// then stays until deleted). A `persistent` room is saved in the store first, so it
    /// is back after a restart. Returns its info and whether it was created.
    ///
    /// # Errors
    /// Store failures (nothing changes then).
    pub async fn create_room(
        &self,
        name: &RoomName,
        options: RoomOptions,
    ) -> Result<(RoomInfo, bool), ServerError> {
        if options.persistent {
            self.shared.store.save_room(name, &options).await?;
        } else {
            self.shared.store.delete_room(name).await?;
        }
        Ok(self.insert_api_room(name, options))
    }

    fn insert_api_room(&self, name: &RoomName, options: RoomOptions) -> (RoomInfo, bool) {
        let mut created = false;
        let room = self
            .shared
            .rooms
            .entry(name.clone())
            .or_insert_with(|| {
                created = true;
                self.shared.metrics.rooms.inc();
                Arc::new(Room::new(name.clone(), options.clone(), now_ms(), true))
            })
            .clone();
        if !created {
            room.set_options(options);
            room.mark_api_created();
        }
        (room.info(false), created)
    }

    /// Every room, by name.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let mut list: Vec<RoomInfo> = self.shared.rooms.iter().map(|r| r.info(false)).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// One room with its members.
    ///
    /// # Errors
    /// `not_found`.
    pub fn room(&self, name: &RoomName) -> Result<RoomInfo, ServerError> {
        self.shared
            .rooms
            .get(name)
            .map(|r| r.info(true))
            .ok_or_else(|| ServerError::request(ErrorCode::NotFound, format!("no room {name}")))
    }

    /// Deletes a room: every member leaves it (others see `user_leave` as usual).
    ///
    /// # Errors
    /// `not_found`.
    pub async fn delete_room(&self, name: &RoomName) -> Result<usize, ServerError> {
        let room = self
            .shared
            .rooms
            .get(name)
            .map(|r| r.clone())
            .ok_or_else(|| ServerError::request(ErrorCode::NotFound, format!("no room {name}")))?;
        self.shared.store.delete_room(name).await?;
        room.unmark_api_created();
        let members: Vec<Arc<ConnHandle>> = room.members().conns.values().cloned().collect();
        for conn in &members {
            // A member that left meanwhile is fine: not_member is the expected race.
            let _ = self.remove_member(conn, name).await;
        }
        // No longer an API room, so it goes like any empty room; if someone joined while
        // it was being emptied, it stays as an ordinary room with that member.
        self.remove_if_empty(name);
        debug!(room = %name, members = members.len(), "room deleted");
        Ok(members.len())
    }

    /// Counters for `/api/stats`.
    pub fn stats(&self) -> Stats {
        let m = &self.shared.metrics;
        Stats {
            connections: self.shared.conns.len(),
            authenticated: usize::try_from(m.authenticated.get()).unwrap_or(0),
            users: self.shared.users.len(),
            rooms: self.shared.rooms.len(),
            messages_in: Metrics::read(&m.messages_in),
            messages_out: Metrics::read(&m.messages_out),
            bytes_in: Metrics::read(&m.bytes_in),
            bytes_out: Metrics::read(&m.bytes_out),
            queue_drops: Metrics::read(&m.queue_drops),
            uptime_ms: u64::try_from(self.shared.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Open connections (including ones still authenticating).
    pub fn connection_count(&self) -> usize {
        self.shared.conns.len()
    }
}

/// Tells `join` that the room it found was removed meanwhile: look it up again.
#[derive(Debug)]
struct Retry;

impl LocalDelivery for Hub {
    fn deliver_local(&self, delivery: &Delivery) -> usize {
        let outgoing = Outgoing::new(delivery.frame.clone(), self.config().compression_threshold);
        let mut count = 0;
        self.for_each_recipient(&delivery.target, delivery.except.as_ref(), |conn| {
            if self.send_outgoing(conn, &outgoing) {
                count += 1;
            }
        });
        count
    }
}

impl Hub {
    /// Calls `f` once for each local authenticated connection `target` names, but
    /// `except`. Holds map and room read locks while it runs: `f` must not block.
    pub(crate) fn for_each_recipient(
        &self,
        target: &Target,
        except: Option<&ClientId>,
        mut f: impl FnMut(&Arc<ConnHandle>),
    ) {
        let shared = &self.shared;
        let mut send = |conn: &Arc<ConnHandle>| {
            if Some(&conn.id) != except {
                f(conn);
            }
        };
        match target {
            Target::All => {
                for list in &shared.users {
                    list.iter().for_each(&mut send);
                }
            }
            Target::Room(name) => {
                if let Some(room) = shared.rooms.get(name).map(|r| r.clone()) {
                    room.members().conns.values().for_each(&mut send);
                }
            }
            Target::Rooms(names) => {
                let mut seen = HashSet::new();
                for name in names {
                    if let Some(room) = shared.rooms.get(name).map(|r| r.clone()) {
                        for conn in room.members().conns.values() {
                            if seen.insert(conn.id.clone()) {
                                send(conn);
                            }
                        }
                    }
                }
            }
            Target::Client(id) => {
                if let Some(conn) = shared.conns.get(id).map(|c| c.clone())
                    && conn.user().is_some()
                {
                    send(&conn);
                }
            }
            Target::User(user) => {
                if let Some(list) = shared.users.get(user) {
                    list.iter().for_each(&mut send);
                }
            }
            Target::Users(users) => {
                let unique: HashSet<&UserId> = users.iter().collect();
                for user in unique {
                    if let Some(list) = shared.users.get(user) {
                        list.iter().for_each(&mut send);
                    }
                }
            }
            Target::Role(role) => {
                for list in &shared.users {
                    for conn in list.iter() {
                        if conn.user().is_some_and(|u| u.has_role(role)) {
                            send(conn);
                        }
                    }
                }
            }
        }
    }
}

/// One frame on its way to several connections: compressed at most once, and only if a
/// recipient that asked for compression gets it (CONTRACT §6).
pub(crate) struct Outgoing {
    plain: Utf8Bytes,
    threshold: usize,
    compressed: OnceCell<Utf8Bytes>,
}

impl Outgoing {
    pub(crate) fn new(plain: Utf8Bytes, threshold: usize) -> Self {
        Self {
            plain,
            threshold,
            compressed: OnceCell::new(),
        }
    }

    /// What `conn` gets: the `compressed` form when it asked and the frame is big enough.
    pub(crate) fn for_conn(&self, conn: &ConnHandle) -> &Utf8Bytes {
        if conn.compress && self.plain.len() >= self.threshold {
            self.compressed.get_or_init(|| {
                frame(&ServerMessage::Compressed {
                    data: roomcast_protocol::codec::deflate(self.plain.as_str()),
                    timestamp: now_ms(),
                })
            })
        } else {
            &self.plain
        }
    }
}

/// `history` answers this many messages unless asked otherwise.
const DEFAULT_HISTORY: u32 = 50;
/// `history` answers at most this many messages.
const MAX_HISTORY: u32 = 500;

/// A stored chat as the `chat` message members receive.
fn chat_message(chat: StoredChat) -> ServerMessage {
    ServerMessage::Chat {
        id: chat.id,
        room: chat.room,
        from: chat.from,
        message: chat.message,
        timestamp: chat.timestamp,
    }
}

/// Validates an application message and serializes it once.
fn app_frame(message: &Value) -> Result<Utf8Bytes, ServerError> {
    app_fields(message)?;
    Ok(Utf8Bytes::from(message.to_string()))
}

/// The fields of an application message: a JSON object with a non-empty string `type`.
fn app_fields(message: &Value) -> Result<&serde_json::Map<String, Value>, ServerError> {
    match message {
        Value::Object(fields)
            if fields
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|kind| !kind.is_empty()) =>
        {
            Ok(fields)
        }
        _ => Err(ServerError::request(
            ErrorCode::BadRequest,
            "message must be a JSON object with a non-empty string `type`",
        )),
    }
}

/// Server counters as JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Open connections.
    pub connections: usize,
    /// Authenticated connections.
    pub authenticated: usize,
    /// Distinct connected users.
    pub users: usize,
    /// Rooms.
    pub rooms: usize,
    /// Frames received.
    pub messages_in: u64,
    /// Frames sent.
    pub messages_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Messages dropped on full queues.
    pub queue_drops: u64,
    /// Time since start.
    pub uptime_ms: u64,
}

/// Counts the bytes serde writes, without keeping them.
struct ByteCounter(usize);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(compress: bool) -> ConnHandle {
        let (tx, _rx) = mpsc::channel(4);
        let (close_tx, _close_rx) = oneshot::channel();
        let id = ClientId::new(uuid::Uuid::new_v4().simple().to_string()).unwrap();
        ConnHandle::new(
            id,
            SocketAddr::from(([127, 0, 0, 1], 1)),
            compress,
            0,
            tx,
            close_tx,
        )
    }

    #[test]
    fn a_frame_is_compressed_once_for_all_recipients_that_asked() {
        let big = Utf8Bytes::from(format!("{{\"type\":\"t\",\"x\":\"{}\"}}", "a".repeat(2000)));
        let outgoing = Outgoing::new(big.clone(), 1024);
        let (gzip_1, gzip_2, plain) = (conn(true), conn(true), conn(false));
        let first = outgoing.for_conn(&gzip_1);
        let second = outgoing.for_conn(&gzip_2);
        assert!(
            first.as_str().starts_with("{\"type\":\"compressed\""),
            "{first}"
        );
        // The same bytes, not an equal copy: the gzip ran once.
        assert_eq!(first.as_str().as_ptr(), second.as_str().as_ptr());
        assert_eq!(outgoing.for_conn(&plain), &big);
        let small = Outgoing::new(Utf8Bytes::from("{\"type\":\"t\"}"), 1024);
        assert_eq!(small.for_conn(&gzip_1).as_str(), "{\"type\":\"t\"}");
    }
}
