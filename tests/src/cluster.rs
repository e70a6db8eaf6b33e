//! Several nodes of Roomcast in one test process, each on its own port, sharing one Redis
//! (under the test's own key prefix) and one PostgreSQL schema of the test's own, as
//! CONTRACT §10 runs them. Nodes beat
//! every 200 ms and count as dead after 1 s, so failure tests stay short.

use roomcast_server::Settings;

use crate::TestServer;
use crate::proxy::Proxy;
use crate::services::{PgSchema, RedisPrefix};

/// The cluster's nodes and what they share.
#[derive(Debug)]
pub struct Cluster {
    /// Node 0, 1, 2, ...
    pub nodes: Vec<TestServer>,
    /// The Redis the nodes share.
    pub redis: RedisPrefix,
    /// The PostgreSQL schema the nodes share as their store.
    pub store: PgSchema,
}

impl Cluster {
    /// `n` nodes with default settings; `None` (skipped) when Redis is unreachable.
    pub async fn start(n: usize) -> Option<Self> {
        Self::with(n, Settings::default()).await
    }

    /// `n` nodes, each started with `settings` plus the cluster's own; `None` (skipped)
    /// when Redis or PostgreSQL is unreachable.
    pub async fn with(n: usize, settings: Settings) -> Option<Self> {
        Self::on(RedisPrefix::create().await?, n, settings).await
    }

    /// `n` nodes on the Redis `redis` names (e.g. a test's private `redis-server`).
    pub async fn on(redis: RedisPrefix, n: usize, settings: Settings) -> Option<Self> {
        let store = PgSchema::create().await?;
        let mut cluster = Self {
            nodes: Vec::new(),
            redis,
            store,
        };
        for _ in 0..n {
            cluster.add(settings.clone()).await;
        }
        cluster.settled().await;
        Some(cluster)
    }

    /// Two nodes on the shared Redis, each with `settings`: node 0 reaches it directly,
    /// node 1 through `proxy` (which a test cuts to take node 1 off the bus); `None`
    /// (skipped) when Redis or PostgreSQL is unreachable.
    pub async fn one_behind(proxy: &Proxy, settings: Settings) -> Option<Self> {
        let mut cluster = Self::on(RedisPrefix::create().await?, 1, settings.clone()).await?;
        let proxied = cluster
            .redis
            .url
            .replacen("127.0.0.1:6379", &proxy.addr.to_string(), 1);
        cluster
            .add(Settings {
                broker: Some(proxied),
                ..settings
            })
            .await;
        cluster.settled().await;
        Some(cluster)
    }

    /// Starts one more node with `settings`; its index is the returned number.
    pub async fn add(&mut self, settings: Settings) -> usize {
        let index = self.nodes.len();
        let node = TestServer::with(self.settings(index, settings)).await;
        self.nodes.push(node);
        index
    }

    /// Waits until every node counts every node live (one heartbeat after the last
    /// start), as a cluster in service does.
    pub async fn settled(&self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        for node in &self.nodes {
            loop {
                let (_, health) = node.get("/healthz").await;
                if health["broker"]["nodes"].as_u64() >= Some(self.nodes.len() as u64) {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the nodes never all saw each other: {health}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }

    /// The settings node `index` runs with.
    pub fn settings(&self, index: usize, settings: Settings) -> Settings {
        Settings {
            broker: settings
                .broker
                .clone()
                .or_else(|| Some(self.redis.url.clone())),
            redis_prefix: Some(self.redis.prefix.clone()),
            node_id: Some(format!("node-{index}")),
            node_heartbeat_ms: settings.node_heartbeat_ms.or(Some(200)),
            node_ttl_ms: settings.node_ttl_ms.or(Some(1_000)),
            store: Some(self.store.url()),
            ..settings
        }
    }

    /// Stops every node.
    pub async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}

impl std::ops::Index<usize> for Cluster {
    type Output = TestServer;

    fn index(&self, index: usize) -> &TestServer {
        &self.nodes[index]
    }
}
