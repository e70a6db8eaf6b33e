//! The real services the cluster tests run against: PostgreSQL and Redis, as this machine
//! (or CI) runs them. Each test gets its own PostgreSQL schema and its own Redis key
//! prefix, so runs in parallel (and runs of other checkouts) never see each other's data,
//! and both are removed when the handle drops, even when the test fails.
//!
//! A service that cannot be reached makes the test skip with a loud message on stderr,
//! unless `ROOMCAST_REQUIRE_SERVICES=1` (which `.ci/run` sets): then it fails, so CI can
//! never go green by skipping.
//!
//! The URLs come from `ROOMCAST_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and `ROOMCAST_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379/0`).

use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection};

/// How long a probe of a service may take before it counts as unreachable.
const PROBE: Duration = Duration::from_secs(3);

/// The PostgreSQL server the tests use.
pub fn database_url() -> String {
    std::env::var("ROOMCAST_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The Redis server the tests use.
pub fn redis_url() -> String {
    std::env::var("ROOMCAST_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// Whether a missing service fails the test instead of skipping it.
pub fn services_required() -> bool {
    std::env::var("ROOMCAST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// Skips (returns `None` after a loud message) or, when services are required, panics.
#[expect(
    clippy::print_stderr,
    reason = "a skip must be loud, and stderr is what the test harness shows"
)]
fn unavailable<T>(service: &str, url: &str, cause: &str) -> Option<T> {
    assert!(
        !services_required(),
        "{service} at {url} is unreachable ({cause}) and ROOMCAST_REQUIRE_SERVICES=1"
    );
    eprintln!(
        "\n!!! SKIPPED: {service} at {url} is unreachable ({cause}); \
         set ROOMCAST_REQUIRE_SERVICES=1 to fail instead\n"
    );
    None
}

fn fresh_name(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A fresh schema on the test PostgreSQL server, dropped (with everything in it) on drop.
#[derive(Debug)]
pub struct PgSchema {
    /// The schema's name (`rc_t_<uuid>`).
    pub name: String,
    server: String,
}

impl PgSchema {
    /// A new empty schema, or `None` (skipped) when PostgreSQL is unreachable.
    pub async fn create() -> Option<Self> {
        let server = database_url();
        let mut conn = match tokio::time::timeout(PROBE, sqlx::PgConnection::connect(&server)).await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return unavailable("PostgreSQL", &server, &e.to_string()),
            Err(_) => return unavailable("PostgreSQL", &server, "no answer within 3 s"),
        };
        let name = fresh_name("rc_t_");
        // `name` is ours: a fixed prefix and a uuid's hex digits.
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&mut conn)
            .await
            .expect("create a test schema");
        let _ = conn.close().await;
        Some(Self { name, server })
    }

    /// The store URL of this schema, as a user writes it in `ROOMCAST_STORE`.
    pub fn url(&self) -> String {
        let separator = if self.server.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-csearch_path={}",
            self.server, self.name
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Drop may run inside a runtime (not allowed to block it) or outside one: a
        // thread of its own with its own runtime works in both.
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop a schema");
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let drop = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
                    let _ = sqlx::raw_sql(AssertSqlSafe(drop)).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// A fresh key and channel prefix on the test Redis server; its keys are deleted on drop.
#[derive(Debug)]
pub struct RedisPrefix {
    /// The prefix (`rc-test-<uuid>`), as a user writes it in `ROOMCAST_REDIS_PREFIX`.
    pub prefix: String,
    /// The server's URL, as a user writes it in `ROOMCAST_BROKER`.
    pub url: String,
}

impl RedisPrefix {
    /// A new prefix, or `None` (skipped) when Redis is unreachable.
    pub async fn create() -> Option<Self> {
        Self::on(&redis_url()).await
    }

    /// A new prefix on the Redis server at `url` (e.g. a test's private `redis-server`).
    pub async fn on(url: &str) -> Option<Self> {
        if let Err(cause) = ping(url).await {
            return unavailable("Redis", url, &cause);
        }
        Some(Self {
            prefix: fresh_name("rc-test-"),
            url: url.to_owned(),
        })
    }
}

/// `PING`s the Redis server at `url` within the probe time.
pub async fn ping(url: &str) -> Result<(), String> {
    let probe = async {
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(PROBE, probe)
        .await
        .unwrap_or_else(|_| Err("no answer within 3 s".to_owned()))
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        let (url, pattern) = (self.url.clone(), format!("{}:*", self.prefix));
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(url) else {
                return;
            };
            let Ok(mut conn) = client.get_connection_with_timeout(PROBE) else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut conn)
                .unwrap_or_default();
            for chunk in keys.chunks(500) {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(chunk).query(&mut conn);
            }
        })
        .join();
    }
}

/// A `redis-server` of the test's own on a free port (never the shared one), which the
/// test may kill, restart or cut subscribers of without disturbing any other test.
#[derive(Debug)]
pub struct PrivateRedis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// Starts one, or `None` (skipped) when `redis-server` is not installed.
    pub async fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self { port, child: None };
        match redis.spawn().await {
            Ok(()) => Some(redis),
            Err(cause) => unavailable("redis-server", "a private port", &cause),
        }
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        self.child = Some(child);
        let url = self.url();
        for _ in 0..50 {
            if ping(&url).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("redis-server on port {} did not answer", self.port))
    }

    /// Kills it (SIGKILL): everything it held is gone, as after a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again, empty, on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn()
            .await
            .expect("restart the private redis-server");
    }

    /// Runs one command on it (e.g. `CLIENT KILL TYPE pubsub`).
    pub async fn command(&self, args: &[&str]) -> redis::Value {
        let client = redis::Client::open(self.url()).expect("url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the private redis-server");
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query_async(&mut conn).await.expect("command")
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
