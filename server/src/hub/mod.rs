//! The [`Hub`]: this node's connections, rooms, topics and batches, and the operations on
//! them that sessions, the HTTP API and application handlers call.
//!
//! It is a cheap-clone handle over `Arc<Inner>`, a composition of parts that each own
//! their state: the connection [`registry`], the [`rooms`], the topic subscriptions
//! ([`topics`]) and the room batches ([`batch`]); presence questions that span nodes go to
//! a [`Presence`], every delivery to the [`Broker`], durable state to the [`Store`]. State
//! lives in sharded maps (`DashMap`) plus one lock per room and per connection, so there
//! is no global lock: a broadcast to one room takes that room's read lock and nothing
//! else. Locks are std locks held only for in-memory work and never across an `.await`;
//! fan-out queues into each connection's queue without waiting, bounded in bytes, so a
//! slow client costs its senders nothing (it is closed with 4029 when its queue overflows). We chose shared
//! state over an actor because an actor would serialize every broadcast through one task,
//! which is the global lock we want to avoid. Lock order: a user's admission lock, a
//! user's presence turn in a room, a map shard, a room's cursor, a room's members, a
//! connection's floor, a connection's state.

mod acks;
mod admin;
mod batch;
mod chat;
mod conn;
mod cursor;
mod floor;
mod local;
mod membership;
mod messaging;
mod outbox;
mod outgoing;
mod pending;
mod presence;
mod registry;
mod repair;
mod room;
mod rooms;
mod topics;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use roomcast_protocol::{ErrorCode, RoomName, ServerMessage, User, UserId};
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

pub use self::admin::Stats;
pub use self::batch::Batched;
use self::batch::Batches;
pub use self::conn::ConnHandle;
use self::local::Local;
pub use self::messaging::{Notified, notification_message};
pub(crate) use self::outbox::Entry;
use self::presence::LocalPresence;
pub use self::registry::ConnectionPermit;
pub(crate) use self::registry::Registration;
use self::registry::Registry;
pub use self::room::{RoomClient, RoomInfo};
use self::rooms::Rooms;
use self::topics::Topics;
pub use self::topics::{Published, check_topic};
use crate::ServerError;
use crate::auth::{Authenticator, Identity};
use crate::broker::{Broker, Delivery, LocalSide, Reach};
use crate::clock::now_ms;
use crate::config::Config;
use crate::metrics::Metrics;
pub use crate::model::{AckOutcome, ConnectionInfo, RoomOptions};
pub use crate::presence::{Presence, PresenceFuture};
use crate::store::Store;

/// Serializes a server message once, into the shared frame every recipient gets.
pub fn frame(message: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(message.to_json())
}

/// The state every connection, handler and API route shares.
#[derive(Clone, Debug)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<Config>,
    auth: Authenticator,
    metrics: Arc<Metrics>,
    broker: Arc<dyn Broker>,
    store: Arc<dyn Store>,
    presence: Arc<dyn Presence>,
    registry: Arc<Registry>,
    rooms: Arc<Rooms>,
    topics: Arc<Topics>,
    batches: Batches,
    user_locks: UserLocks,
    /// One turn per user and room: a user's entering and leaving a room here reach the
    /// cluster's presence in the order they happened in the room (see `membership`).
    presence_turns: UserLocks,
    /// Set while [`Hub::check_users`] runs: one at a time, however often the bus flaps.
    checking_users: std::sync::atomic::AtomicBool,
    /// Set when a user check is asked for; the running one then runs once more.
    check_users_again: std::sync::atomic::AtomicBool,
    shutdown: CancellationToken,
    /// Background work (batch timers, the stats push, the demo feed) that shutdown
    /// waits for.
    tasks: TaskTracker,
    started: Instant,
}

/// What [`Hub::admit`] tells the session.
#[derive(Debug)]
pub(crate) struct Admitted {
    /// The user, as the connection now carries it.
    pub user: Arc<User>,
    /// Default rooms the connection could not join, and why.
    pub refused: Vec<(RoomName, ServerError)>,
}

impl Hub {
    /// Builds the hub for `config` and starts `broker` with this node's local side, so
    /// that everything published from now on reaches this node's connections.
    ///
    /// # Errors
    /// What the broker's start fails with.
    pub async fn start(
        config: Config,
        broker: Arc<dyn Broker>,
        store: Arc<dyn Store>,
    ) -> Result<Self, ServerError> {
        let auth = Authenticator::new(
            &config.auth.jwt_secret,
            config.auth.allow_tokens_without_expiry,
        );
        let metrics = Arc::new(Metrics::new());
        let registry = Arc::new(Registry::new(
            config.limits.max_connections,
            config.limits.send_queue_bytes,
        ));
        let rooms = Arc::new(Rooms::new(metrics.clone()));
        let topics = Arc::new(Topics::default());
        // A cluster broker brings the cluster's presence; one node keeps its own.
        let presence = broker
            .presence()
            .unwrap_or_else(|| Arc::new(LocalPresence::new(registry.clone())));
        let inner = Arc::new(Inner {
            auth,
            broker: broker.clone(),
            store,
            presence,
            registry: registry.clone(),
            rooms: rooms.clone(),
            topics: topics.clone(),
            batches: Batches::default(),
            user_locks: UserLocks::new(USER_LOCK_STRIPES),
            presence_turns: UserLocks::new(PRESENCE_TURN_STRIPES),
            checking_users: std::sync::atomic::AtomicBool::new(false),
            check_users_again: std::sync::atomic::AtomicBool::new(false),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            started: Instant::now(),
            metrics: metrics.clone(),
            config: Arc::new(config),
        });
        let hub = Self { inner };
        let local: Arc<dyn LocalSide> = Arc::new(Local {
            registry,
            rooms,
            topics,
            metrics,
            compression_threshold: hub.config().features.compression_threshold,
            hub: Arc::downgrade(&hub.inner),
        });
        broker.start(local).await?;
        Ok(hub)
    }

    /// Recreates the persistent rooms the store keeps.
    ///
    /// # Errors
    /// Store failures.
    pub async fn restore_rooms(&self) -> Result<usize, ServerError> {
        let rooms = self.inner.store.rooms().await?;
        let count = rooms.len();
        for (name, options) in rooms {
            self.inner.rooms.configure(&name, options);
        }
        Ok(count)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Token signing and verification.
    pub fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Cancelled when the server shuts down; every connection loop selects on it.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }

    /// Runs `task` as tracked background work: shutdown cancels the token it should
    /// select on, then waits for it.
    pub fn spawn_background(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.inner.tasks.spawn(task);
    }

    /// Stops background work: flushes every pending batch, then waits for the tracked
    /// tasks (which see the cancelled shutdown token) to end.
    pub(crate) async fn stop_background(&self) {
        self.flush_batches().await;
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    /// Stops the broker's own tasks (its subscription, the node heartbeat): last, after
    /// the last delivery, and even when background work did not stop in time.
    pub(crate) async fn stop_broker(&self) {
        self.inner.broker.stop().await;
    }

    /// How the broker is doing.
    pub fn broker_health(&self) -> crate::broker::BrokerHealth {
        self.inner.broker.health()
    }

    /// Whether the store answers within a second.
    ///
    /// # Errors
    /// What `/healthz` (which anyone may call) may say of the failure: no host, no
    /// statement; the details go to the log.
    pub async fn store_health(&self) -> Result<(), String> {
        match tokio::time::timeout(std::time::Duration::from_secs(1), self.inner.store.ping()).await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => {
                warn!(cause = %err, "health check: the store failed");
                Err("the store failed".to_owned())
            }
            Err(_) => Err("no answer within 1 s".to_owned()),
        }
    }

    /// Reserves a slot under the total connection limit, `None` when full or shutting down.
    pub fn try_reserve(&self) -> Option<ConnectionPermit> {
        if self.inner.shutdown.is_cancelled() {
            return None;
        }
        self.inner.registry.try_reserve()
    }

    /// Registers a freshly upgraded connection.
    pub(crate) fn register(&self, remote: SocketAddr, compress: bool) -> Registration {
        let registration = self.inner.registry.register(remote, compress);
        self.inner.metrics.connections.inc();
        registration
    }

    /// Admits a connection that has proven `identity`: under the user's admission lock,
    /// loads its topic subscriptions, claims a slot under the per-user limit, queues
    /// `auth_ok` before anything addressed to the user can reach the connection, then
    /// what waited for the user; then joins the default rooms.
    ///
    /// # Errors
    /// `limit_exceeded` when the user already has the per-user limit of connections;
    /// presence failures.
    pub(crate) async fn admit(
        &self,
        conn: &Arc<ConnHandle>,
        identity: &Identity,
    ) -> Result<Admitted, ServerError> {
        let user = Arc::new(identity.user.clone());
        let limit = self.config().limits.max_connections_per_user;
        {
            let _turn = self.inner.user_locks.lock(&user.user_id).await;
            // Subscriptions first: once `auth_ok` is out, a publish must reach the user.
            self.load_subscriptions(&user.user_id).await;
            if !self.claim_slot(&user.user_id, &conn.id, limit).await {
                return Err(ServerError::request(
                    ErrorCode::LimitExceeded,
                    format!(
                        "user {} already has {limit} connections (the limit)",
                        user.user_id
                    ),
                ));
            }
            {
                let mut state = conn.state();
                state.user = Some(user.clone());
                state.expires_at = identity.expires_at;
            }
            let welcome = self.auth_ok(
                conn,
                &user,
                identity,
                self.config().features.default_rooms.clone(),
            );
            self.inner
                .registry
                .add_user_conn(conn, &user.user_id, || self.send(conn, &welcome));
            self.inner.metrics.authenticated.inc();
            if let Err(err) = self.inner.presence.connected(&conn.info()).await {
                warn!(client = %conn.id, cause = %err, "connection not recorded in the cluster's registry");
            }
            self.deliver_pending(conn, &user).await;
        }
        let mut refused = Vec::new();
        for room in &self.config().features.default_rooms {
            if let Err(err) = self.join(conn, room, None).await {
                refused.push((room.clone(), err));
            }
        }
        Ok(Admitted { user, refused })
    }

    /// The `auth_ok` of `conn` for `identity`, listing `rooms` as joined by the server.
    pub(crate) fn auth_ok(
        &self,
        conn: &ConnHandle,
        user: &User,
        identity: &Identity,
        rooms: Vec<RoomName>,
    ) -> ServerMessage {
        ServerMessage::AuthOk {
            client_id: conn.id.clone(),
            user_id: user.user_id.clone(),
            user: user.clone(),
            rooms,
            expires_at: identity.expires_at,
            timestamp: now_ms(),
        }
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

    /// Claims a per-user slot. When the cluster's registry is away (Redis), the node
    /// counts the user's connections it has itself rather than refuse everyone: the
    /// limit then holds per node until Redis is back.
    async fn claim_slot(
        &self,
        user: &UserId,
        client: &roomcast_protocol::ClientId,
        limit: usize,
    ) -> bool {
        match self.inner.presence.claim(user, client, limit).await {
            Ok(claimed) => claimed,
            Err(err) => {
                warn!(%user, cause = %err, "registry unavailable: the per-user limit is counted on this node");
                self.inner.registry.user_connections(user) < limit
            }
        }
    }

    /// Whether `user` is connected anywhere; when the registry is away, whether it is
    /// connected here.
    pub(crate) async fn is_online(&self, user: &UserId) -> bool {
        match self.inner.presence.is_online(user).await {
            Ok(online) => online,
            Err(err) => {
                warn!(%user, cause = %err, "registry unavailable: online means online on this node");
                self.inner.registry.user_connections(user) > 0
            }
        }
    }

    /// Forgets a connection: leaves its rooms (announcing `user_leave` where it was the
    /// user's last connection), releases its per-user slot and drops it from every index.
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
            let registry = &self.inner.registry;
            if registry.remove_user_conn(conn, &user.user_id) {
                let _turn = self.inner.user_locks.lock(&user.user_id).await;
                if registry.forget_user_if_idle(&user.user_id) {
                    self.unload_subscriptions(&user.user_id);
                }
            }
            if let Err(err) = self.inner.presence.release(&user.user_id, &conn.id).await {
                warn!(client = %conn.id, cause = %err, "connection slot not released");
            }
            self.inner.metrics.authenticated.dec();
        }
        if self.inner.registry.forget(&conn.id) {
            self.inner.metrics.connections.dec();
        }
    }

    /// Queues one message for one connection: the answer to its own request, or what it
    /// must get before anything else (its `user_list`, a replay, pending messages).
    pub(crate) fn send(&self, conn: &ConnHandle, message: &ServerMessage) {
        outgoing::send_outgoing(
            &self.inner.metrics,
            conn,
            &outgoing::Outgoing::new(frame(message), self.config().features.compression_threshold),
        );
    }

    /// Publishes a delivery through the broker.
    ///
    /// # Errors
    /// [`ServerError::Broker`] when the broker fails.
    pub async fn publish(&self, delivery: Delivery) -> Result<Reach, ServerError> {
        self.inner.broker.publish(delivery).await
    }

    /// Publishes a best-effort notice (presence); a failure is logged.
    async fn publish_quietly(&self, delivery: Delivery) {
        if let Err(err) = self.publish(delivery).await {
            warn!(cause = %err, "presence notice not delivered");
        }
    }

    /// Open connections on this node (including ones still authenticating).
    pub fn connection_count(&self) -> usize {
        self.inner.registry.connection_count()
    }
}

/// Serializes what must not interleave for one user (its admission against live
/// private messages and notifications, subscription changes), striped by user id:
/// never one lock for everyone.
#[derive(Debug)]
struct UserLocks {
    stripes: Box<[tokio::sync::Mutex<()>]>,
}

/// Stripes of the users' admission locks.
const USER_LOCK_STRIPES: usize = 64;
/// Stripes of the presence turns: more, since a turn may wait on Redis, and two users
/// who share a stripe wait for each other.
const PRESENCE_TURN_STRIPES: usize = 1024;

impl UserLocks {
    fn new(stripes: usize) -> Self {
        Self {
            stripes: (0..stripes).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    async fn lock(&self, user: &UserId) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock_hashed(user.as_str()).await
    }

    /// The turn of one user in one room.
    async fn lock_in(&self, room: &RoomName, user: &UserId) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock_hashed((room.as_str(), user.as_str())).await
    }

    async fn lock_hashed(&self, key: impl std::hash::Hash) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, RandomState};
        static STRIPES: OnceLock<RandomState> = OnceLock::new();
        let hash = STRIPES.get_or_init(RandomState::new).hash_one(key);
        let stripe = usize::try_from(hash % self.stripes.len() as u64).unwrap_or(0);
        self.stripes[stripe].lock().await
    }
}
