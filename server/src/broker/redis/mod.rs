//! [`RedisBroker`]: several nodes on one Redis, acting as one server (CONTRACT §10,
//! `docs/cluster.md`). It delivers to this node's connections first and then publishes
//! to the bus, so local delivery goes on while Redis is away; what its subscriber hears
//! from other nodes it hands to the same local side.
//!
//! Channels (prefix `P`): `P:room:<room>` for one room's deliveries, subscribed while
//! this node has a member of the room; `P:bcast` for every other target (several rooms,
//! users, roles, all, topics, one client) and for requests, which every node filters
//! locally; `P:node:<id>` for the replies to this node's requests; `P:ctl` for heartbeats.
//! A message is a header line plus the frame bytes as serialized once ([`wire`]).
//!
//! Requests, counted and acknowledged deliveries expect one reply per node that received
//! them: `PUBLISH` says how many subscribers did (one per node, this one included, whose
//! own subscriber answers "mine" at once), so the asker waits for exactly those, or for
//! its deadline. This module owns the command connection, the room watch counts and the
//! waiting requests; [`subscriber`] owns the subscription, [`nodes`] the heartbeat.

mod leader;
mod nodes;
mod presence;
mod publisher;
mod reaper;
mod reconcile;
mod registry;
mod replies;
mod requests;
mod returned;
mod subscriber;
mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink};
use roomcast_protocol::RoomName;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use self::replies::Replies;
use self::requests::{client_of, is_not_found, merge, owned_by_one, silent};
use self::wire::{Header, Kind, Reply};
use super::{
    AckRequest, AckResults, Broker, BrokerHealth, Delivery, LocalSide, NodeAnswer, NodeRequest,
    Reach, Target,
};
use crate::ServerError;
use crate::clock::now_ms;
use crate::config::Config;
use crate::model::AckOutcome;

/// How long a reachability probe (at start) may take.
const PROBE: Duration = Duration::from_secs(3);
/// How long one command may take before it counts as failed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a request waits for the other nodes' answers.
const SURVEY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long after an acknowledged delivery's deadline its asker still waits for the
/// other nodes' outcomes (they resolve at the same deadline, then travel).
const ACK_GRACE: Duration = Duration::from_secs(1);
/// At most one "Redis is away" warning this often.
const WARN_EVERY_MS: u64 = 10_000;

/// What a Redis broker needs to know.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://host:port/db`.
    pub url: String,
    /// This node's id (fresh per start unless configured).
    pub node_id: String,
    /// Key and channel prefix.
    pub prefix: String,
    /// How often this node beats.
    pub heartbeat: Duration,
    /// How long a silent node counts as alive.
    pub ttl: Duration,
}

impl RedisOptions {
    /// The options a configuration names; `None` for a local broker.
    pub fn from_config(config: &Config) -> Option<Self> {
        match &config.cluster.broker {
            crate::config::BrokerUrl::Local => None,
            crate::config::BrokerUrl::Redis(url) => Some(Self {
                url: url.clone(),
                node_id: config.cluster.node_id.clone(),
                prefix: config.cluster.redis_prefix.clone(),
                heartbeat: config.cluster.node_heartbeat,
                ttl: config.cluster.node_ttl,
            }),
        }
    }
}

/// The cluster broker.
#[derive(Clone)]
pub struct RedisBroker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker")
            .field("node", &self.shared.options.node_id)
            .field("prefix", &self.shared.options.prefix)
            .finish_non_exhaustive()
    }
}

/// What the broker's parts share.
struct Shared {
    options: RedisOptions,
    client: redis::Client,
    commands: ConnectionManager,
    local: OnceLock<Arc<dyn LocalSide>>,
    /// Local members per watched room; the subscriber subscribes exactly these rooms.
    rooms: tokio::sync::Mutex<HashMap<RoomName, usize>>,
    /// The live subscription's sink, while there is one.
    sink: Mutex<Option<PubSubSink>>,
    replies: Replies,
    /// Fire-and-forget messages for the publisher task.
    queue: tokio::sync::mpsc::Sender<publisher::Queued>,
    queued: Mutex<Option<tokio::sync::mpsc::Receiver<publisher::Queued>>>,
    /// Since when this node's heartbeats succeed without a break (ms; 0 while they
    /// fail): it reaps no one before it has beaten for a TTL.
    beating_since: AtomicU64,
    /// Redis's clock minus this node's (ms), as the last heartbeat measured it.
    clock_offset: std::sync::atomic::AtomicI64,
    /// When this node last heard its own heartbeat on the bus (ms).
    heard_own: AtomicU64,
    /// Whether this node leads, as [`leader`] last found.
    leading: AtomicBool,
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    counters: Counters,
}

/// What `/metrics` and `/healthz` read.
#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    received: AtomicU64,
    publish_failures: AtomicU64,
    resubscribes: AtomicU64,
    reaped: AtomicU64,
    nodes: AtomicU64,
    subscribed: AtomicBool,
    commands_ok: AtomicBool,
    last_warning: AtomicU64,
}

impl RedisBroker {
    /// Connects to Redis: `PING`s it (3 s at most) so that a wrong URL or a server that
    /// is down stops the node at start with a clear message, rather than at the first
    /// delivery.
    ///
    /// # Errors
    /// [`ServerError::Broker`]: `cannot reach Redis at <url>: <cause>`.
    pub async fn connect(options: RedisOptions) -> Result<Self, ServerError> {
        let unreachable = |cause: &dyn std::fmt::Display| {
            ServerError::Broker(format!("cannot reach Redis at {}: {cause}", options.url))
        };
        let client = redis::Client::open(options.url.as_str()).map_err(|e| unreachable(&e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2)
            // Back within a heartbeat of Redis's return: the reaper gives a node one TTL
            // (at least two heartbeats) to beat again before it takes it for dead.
            .set_max_delay(options.heartbeat.min(Duration::from_secs(2)));
        let connect = async {
            let mut commands = client.get_connection_manager_with_config(config).await?;
            redis::cmd("PING")
                .query_async::<String>(&mut commands)
                .await?;
            Ok::<_, redis::RedisError>(commands)
        };
        let commands = match tokio::time::timeout(PROBE, connect).await {
            Ok(Ok(commands)) => commands,
            Ok(Err(e)) => return Err(unreachable(&e)),
            Err(_) => return Err(unreachable(&"no answer within 3 s")),
        };
        let (queue, queued) = tokio::sync::mpsc::channel(publisher::QUEUE);
        let counters = Counters::default();
        counters.commands_ok.store(true, Ordering::Relaxed);
        Ok(Self {
            shared: Arc::new(Shared {
                options,
                client,
                commands,
                local: OnceLock::new(),
                rooms: tokio::sync::Mutex::new(HashMap::new()),
                sink: Mutex::new(None),
                replies: Replies::default(),
                queue,
                queued: Mutex::new(Some(queued)),
                beating_since: AtomicU64::new(0),
                clock_offset: std::sync::atomic::AtomicI64::new(0),
                heard_own: AtomicU64::new(now_ms()),
                leading: AtomicBool::new(false),
                stop: CancellationToken::new(),
                tasks: Mutex::new(Vec::new()),
                counters,
            }),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.shared.options.node_id
    }
}

impl Shared {
    fn node(&self) -> &str {
        &self.options.node_id
    }

    fn channel(&self, name: &str) -> String {
        format!("{}:{name}", self.options.prefix)
    }

    fn room_channel(&self, room: &RoomName) -> String {
        format!("{}:room:{room}", self.options.prefix)
    }

    fn node_channel(&self, node: &str) -> String {
        format!("{}:node:{node}", self.options.prefix)
    }

    /// Where a delivery to `target` is published.
    fn target_channel(&self, target: &Target) -> String {
        match target {
            Target::Room(room) => self.room_channel(room),
            _ => self.channel("bcast"),
        }
    }

    fn local(&self) -> Result<&Arc<dyn LocalSide>, ServerError> {
        self.local
            .get()
            .ok_or_else(|| ServerError::Broker("the broker has not been started".into()))
    }

    /// Publishes `message` on `channel`: how many subscribers (nodes) received it, or
    /// `None` when Redis is away (counted, and warned about at most every 10 s).
    async fn publish(&self, channel: &str, message: Vec<u8>) -> Option<usize> {
        let mut commands = self.commands.clone();
        let sent = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(message)
            .query_async::<usize>(&mut commands)
            .await;
        match sent {
            Ok(receivers) => {
                self.counters.published.fetch_add(1, Ordering::Relaxed);
                self.counters.commands_ok.store(true, Ordering::Relaxed);
                Some(receivers)
            }
            Err(err) => {
                self.counters
                    .publish_failures
                    .fetch_add(1, Ordering::Relaxed);
                self.counters.commands_ok.store(false, Ordering::Relaxed);
                self.warn_away(&err);
                None
            }
        }
    }

    /// Queues `message` for `channel` without waiting; a full queue drops it (counted).
    fn enqueue(&self, channel: String, message: Vec<u8>) {
        if self.queue.try_send((channel, message)).is_err() {
            self.counters
                .publish_failures
                .fetch_add(1, Ordering::Relaxed);
            self.warn_away(&"the publish queue is full");
        }
    }

    /// One warning per interval while Redis is away, not one per message.
    fn warn_away(&self, cause: &dyn std::fmt::Display) {
        let now = now_ms();
        let last = self.counters.last_warning.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= WARN_EVERY_MS
            && self
                .counters
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            warn!(url = %self.options.url, cause = %cause, "Redis is unreachable: deliveries reach this node only");
        }
    }

    /// Publishes a message that every receiving node answers, and collects the answers
    /// (this node's own subscriber answers [`Reply::Own`], which is left out).
    async fn survey(
        &self,
        channel: &str,
        mut header: Header,
        payload: &[u8],
        wait: Duration,
    ) -> Vec<(String, Reply)> {
        let pending = self.replies.open();
        header.r = Some(pending.id().to_owned());
        let Some(receivers) = self.publish(channel, wire::encode(&header, payload)).await else {
            return Vec::new();
        };
        pending
            .collect(receivers, wait)
            .await
            .into_iter()
            .filter(|(_, reply)| *reply != Reply::Own)
            .collect()
    }
}

impl Broker for RedisBroker {
    fn start(&self, local: Arc<dyn LocalSide>) -> BoxFuture<'_, Result<(), ServerError>> {
        Box::pin(async move {
            let shared = &self.shared;
            shared
                .local
                .set(local)
                .map_err(|_| ServerError::Broker("the broker was already started".into()))?;
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let queued = shared
                .queued
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .ok_or_else(|| ServerError::Broker("the broker was already started".into()))?;
            let tasks = [
                tokio::spawn(subscriber::run(shared.clone(), ready_tx)),
                tokio::spawn(publisher::run(shared.clone(), queued)),
                tokio::spawn(nodes::beat(shared.clone())),
                tokio::spawn(nodes::check_positions(shared.clone())),
                tokio::spawn(reconcile::run(shared.clone())),
            ];
            shared
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend(tasks);
            // Serve only once this node hears the bus, so nothing published to it after
            // it accepts its first connection is missed.
            match tokio::time::timeout(PROBE, ready_rx).await {
                Ok(Ok(())) => {
                    reaper::clear_previous(shared).await;
                    nodes::once(shared).await;
                    Ok(())
                }
                _ => Err(ServerError::Broker(format!(
                    "cannot subscribe on Redis at {}",
                    shared.options.url
                ))),
            }
        })
    }

    fn publish(&self, delivery: Delivery) -> BoxFuture<'_, Result<Reach, ServerError>> {
        Box::pin(async move {
            let shared = &self.shared;
            let reach = shared.local()?.deliver(&delivery);
            if matches!(delivery.target, Target::Client(_)) && reach.connections > 0 {
                return Ok(reach);
            }
            let (header, payload) = wire::delivery_message(shared.node(), &delivery);
            let channel = shared.route(&delivery.target).await;
            shared.enqueue(channel, wire::encode(&header, &payload));
            Ok(reach)
        })
    }

    fn publish_elsewhere(&self, delivery: Delivery) -> BoxFuture<'_, Result<(), ServerError>> {
        Box::pin(async move {
            let shared = &self.shared;
            let (header, payload) = wire::delivery_message(shared.node(), &delivery);
            shared.enqueue(
                shared.target_channel(&delivery.target),
                wire::encode(&header, &payload),
            );
            Ok(())
        })
    }

    fn publish_counted(&self, delivery: Delivery) -> BoxFuture<'_, Result<Reach, ServerError>> {
        Box::pin(async move {
            let shared = &self.shared;
            let mut reach = shared.local()?.deliver(&delivery);
            if matches!(delivery.target, Target::Client(_)) && reach.connections > 0 {
                return Ok(reach);
            }
            let (header, payload) = wire::delivery_message(shared.node(), &delivery);
            let channel = shared.route(&delivery.target).await;
            let mut users: std::collections::BTreeSet<_> = reach.user_ids.drain(..).collect();
            for (_, reply) in shared
                .survey(&channel, header, &payload, SURVEY_TIMEOUT)
                .await
            {
                if let Reply::Reach(theirs) = reply {
                    reach.connections += theirs.connections;
                    users.extend(theirs.user_ids);
                }
            }
            // A user with connections on two nodes is one user.
            reach.users = users.len().max(reach.users);
            reach.user_ids = users.into_iter().collect();
            Ok(reach)
        })
    }

    fn publish_with_ack(
        &self,
        delivery: Delivery,
        ack: AckRequest,
    ) -> BoxFuture<'_, Result<AckResults, ServerError>> {
        Box::pin(async move {
            let shared = &self.shared;
            let local = shared.local()?.deliver_with_ack(&delivery, &ack);
            let (mut header, payload) = wire::delivery_message(shared.node(), &delivery);
            header.a = Some(ack.correlation.clone());
            header.d = Some(ack.deadline);
            let wait = Duration::from_millis(ack.deadline.saturating_sub(now_ms())) + ACK_GRACE;
            let channel = shared.route(&delivery.target).await;
            let live = shared.live_node_ids().await.unwrap_or_default();
            // Each other node's recipients, as the registry has them now: if the node dies
            // while the clients are waited for, the reaper may clear its entries first.
            let mut expected = Vec::new();
            for node in live.iter().filter(|n| n.as_str() != shared.node()) {
                match shared
                    .recipients_on(node, &delivery.target, delivery.except.as_ref())
                    .await
                {
                    Ok(clients) => expected.push((node.clone(), clients)),
                    Err(err) => warn!(node, cause = %err, "a node's recipients are unknown"),
                }
            }
            let (mut results, remote) =
                tokio::join!(local, shared.survey(&channel, header, &payload, wait));
            let answered: HashSet<String> = remote.iter().map(|(node, _)| node.clone()).collect();
            for (_, reply) in remote {
                if let Reply::Acks(outcomes) = reply {
                    results.extend(outcomes.into_iter().map(|(c, o)| (c, o.into())));
                }
            }
            // A node that did not answer still owes an outcome for each of its
            // recipients, which the registry names: `timeout` while it lives (it may
            // just be slow), `disconnected` once it is dead.
            for (node, clients) in expected {
                if answered.contains(&node) {
                    continue;
                }
                let outcome = if shared.is_alive(&node).await {
                    AckOutcome::Timeout
                } else {
                    AckOutcome::Disconnected
                };
                for client in clients {
                    results.entry(client).or_insert(outcome);
                }
            }
            Ok(results)
        })
    }

    fn request(&self, request: NodeRequest) -> BoxFuture<'_, Result<NodeAnswer, ServerError>> {
        Box::pin(async move {
            let shared = &self.shared;
            let owned = owned_by_one(&request);
            let here = shared.local()?.handle(request.clone()).await;
            if owned && !is_not_found(&here) {
                return here;
            }
            let header = Header::new(shared.node(), Kind::Request);
            let payload = wire::json(&request);
            let listing = matches!(request, NodeRequest::List { .. });
            let live = if listing {
                shared.live_node_ids().await.unwrap_or_default()
            } else {
                Vec::new()
            };
            let channel = match client_of(&request) {
                Some(client) => shared.route_client(client).await,
                None => shared.channel("bcast"),
            };
            let replies = shared
                .survey(&channel, header, &payload, SURVEY_TIMEOUT)
                .await;
            let answered: HashSet<String> = replies.iter().map(|(node, _)| node.clone()).collect();
            let answers = replies.into_iter().filter_map(|(_, reply)| match reply {
                Reply::Answer(answer) => Some(answer),
                _ => None,
            });
            if owned {
                // The owner's answer, whatever it is; `not_found` when no node has it.
                return answers
                    .map(|a| a.map_err(ServerError::from))
                    .find(|a| !is_not_found(a))
                    .unwrap_or(here);
            }
            let mut merged = merge(here?, answers)?;
            if let NodeAnswer::Connections(list) = &mut merged {
                // A node that did not answer in time is listed from the registry (what its
                // connections were when they authenticated), never an error.
                for node in silent(shared, &live, &answered) {
                    match shared.connections_of(node).await {
                        Ok(theirs) => {
                            warn!(
                                node,
                                connections = theirs.len(),
                                "a node did not answer the listing; listed from the registry"
                            );
                            list.extend(theirs);
                        }
                        Err(err) => {
                            warn!(node, cause = %err, "a silent node's connections are unknown");
                        }
                    }
                }
            }
            Ok(merged)
        })
    }

    fn watch_room<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, ()> {
        Box::pin(subscriber::watch(&self.shared, room))
    }

    fn unwatch_room<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, ()> {
        Box::pin(subscriber::unwatch(&self.shared, room))
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.shared.stop.cancel();
            let tasks = std::mem::take(
                &mut *self
                    .shared
                    .tasks
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            for task in tasks {
                let _ = task.await;
            }
        })
    }

    fn presence(&self) -> Option<Arc<dyn crate::presence::Presence>> {
        Some(Arc::new(presence::RedisPresence::new(self.shared.clone())))
    }

    fn leads(&self) -> bool {
        self.shared.leading.load(Ordering::Relaxed)
    }

    fn health(&self) -> BrokerHealth {
        let c = &self.shared.counters;
        BrokerHealth {
            kind: "redis",
            connected: c.subscribed.load(Ordering::Relaxed)
                && c.commands_ok.load(Ordering::Relaxed),
            nodes: c.nodes.load(Ordering::Relaxed),
            published: c.published.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            publish_failures: c.publish_failures.load(Ordering::Relaxed),
            resubscribes: c.resubscribes.load(Ordering::Relaxed),
            reaped_nodes: c.reaped.load(Ordering::Relaxed),
        }
    }
}
