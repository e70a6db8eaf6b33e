//! Several nodes of Roomcast in one test process, each on its own port, sharing one Redis
//! (under the test's own key prefix) and one store, as CONTRACT §10 runs them. Nodes beat
//! every 200 ms and count as dead after 1 s, so failure tests stay short.

use roomcast_server::Settings;

use crate::TestServer;
use crate::services::RedisPrefix;

/// The cluster's nodes and what they share.
#[derive(Debug)]
pub struct Cluster {
    /// Node 0, 1, 2, ...
    pub nodes: Vec<TestServer>,
    /// The Redis the nodes share.
    pub redis: RedisPrefix,
    store: SharedStore,
}

/// The store every node of one cluster opens.
#[derive(Debug)]
struct SharedStore {
    url: String,
    _dir: Option<ScratchDir>,
}

#[derive(Debug)]
struct ScratchDir(std::path::PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl SharedStore {
    /// A SQLite file of the test's own: every node opens it (WAL, one writer at a time).
    fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "roomcast-cluster-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self {
            url: format!("sqlite://{}", dir.join("store.db").display()),
            _dir: Some(ScratchDir(dir)),
        }
    }
}

impl Cluster {
    /// `n` nodes with default settings; `None` (skipped) when Redis is unreachable.
    pub async fn start(n: usize) -> Option<Self> {
        Self::with(n, Settings::default()).await
    }

    /// `n` nodes, each started with `settings` plus the cluster's own.
    pub async fn with(n: usize, settings: Settings) -> Option<Self> {
        let redis = RedisPrefix::create().await?;
        let mut cluster = Self {
            nodes: Vec::new(),
            redis,
            store: SharedStore::sqlite(),
        };
        // Created and migrated once, before the nodes open it at the same moment.
        roomcast_server::store::open(&cluster.store.url)
            .await
            .expect("create the cluster's store");
        for _ in 0..n {
            cluster.add(settings.clone()).await;
        }
        Some(cluster)
    }

    /// Starts one more node with `settings`; its index is the returned number.
    pub async fn add(&mut self, settings: Settings) -> usize {
        let index = self.nodes.len();
        let node = TestServer::with(self.settings(index, settings)).await;
        self.nodes.push(node);
        index
    }

    /// The settings node `index` runs with.
    pub fn settings(&self, index: usize, settings: Settings) -> Settings {
        Settings {
            broker: Some(self.redis.url.clone()),
            redis_prefix: Some(self.redis.prefix.clone()),
            node_id: Some(format!("node-{index}")),
            node_heartbeat_ms: settings.node_heartbeat_ms.or(Some(200)),
            node_ttl_ms: settings.node_ttl_ms.or(Some(1_000)),
            store: Some(self.store.url.clone()),
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
