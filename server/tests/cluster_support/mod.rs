//! What the tests of real `roomcast` processes in a cluster share (`cluster_kill.rs`,
//! `cluster_stop.rs`): the services (a fresh PostgreSQL schema and Redis key prefix per
//! run, removed on drop; an unreachable service skips loudly, or fails under
//! `ROOMCAST_REQUIRE_SERVICES=1`, as in the `roomcast-tests` crate, which this package
//! cannot depend on), node processes, and a minimal WebSocket client.

// Each test file is its own crate and uses its own part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection};
use tokio::net::TcpStream as AsyncTcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a node may take to answer `/healthz`, or a client to get an answer.
pub const PATIENCE: Duration = Duration::from_secs(10);
/// How long a service probe may take before the service counts as unreachable.
pub const PROBE: Duration = Duration::from_secs(3);
/// Poll interval for anything awaited.
pub const POLL: Duration = Duration::from_millis(20);
pub const SECRET: &str = "cluster-kill-test-secret";
pub const API_KEY: &str = "cluster-kill-test-api-key";
pub const ROOM: &str = "r";

// ---------------------------------------------------------------------------------------
// Services

/// Skips (returns `None` after a loud message) or, when services are required, panics.
#[expect(
    clippy::print_stderr,
    reason = "a skip must be loud, and stderr is what the test harness shows"
)]
pub fn unavailable<T>(service: &str, url: &str, cause: &str) -> Option<T> {
    assert!(
        std::env::var("ROOMCAST_REQUIRE_SERVICES").as_deref() != Ok("1"),
        "{service} at {url} is unreachable ({cause}) and ROOMCAST_REQUIRE_SERVICES=1"
    );
    eprintln!(
        "\n!!! SKIPPED: {service} at {url} is unreachable ({cause}); \
         set ROOMCAST_REQUIRE_SERVICES=1 to fail instead\n"
    );
    None
}

pub fn fresh_name(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A fresh schema on the test PostgreSQL server, dropped with everything in it on drop.
#[derive(Debug)]
pub struct PgSchema {
    name: String,
    server: String,
}

impl PgSchema {
    pub async fn create() -> Option<Self> {
        let server = std::env::var("ROOMCAST_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
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

    /// The store URL of this schema, for `ROOMCAST_STORE`.
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
        // Drop may run inside a runtime (which must not be blocked): a thread of its own
        // with its own runtime works either way.
        let (server, name) = (self.server.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
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
    prefix: String,
    url: String,
}

impl RedisPrefix {
    pub async fn create() -> Option<Self> {
        let url = std::env::var("ROOMCAST_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
        let probe = async {
            let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
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
        let ping = tokio::time::timeout(PROBE, probe)
            .await
            .unwrap_or_else(|_| Err("no answer within 3 s".to_owned()));
        if let Err(cause) = ping {
            return unavailable("Redis", &url, &cause);
        }
        Some(Self {
            prefix: fresh_name("rc-test-"),
            url,
        })
    }
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

// ---------------------------------------------------------------------------------------
// Nodes

/// A loopback address whose port was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr")
}

/// A child's output, read by a background thread (shown when the test fails).
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<String>>);

impl Captured {
    pub fn read_from(pipe: impl Read + Send + 'static) -> Self {
        let captured = Self::default();
        let sink = captured.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.0.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
        captured
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A running `roomcast` node, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Node {
    pub addr: SocketAddr,
    child: Child,
    stdout: Captured,
    stderr: Captured,
}

impl Node {
    /// Starts node `id` of the cluster and waits until it answers `/healthz` with 200.
    pub fn start(id: &str, redis: &RedisPrefix, store: &PgSchema) -> Self {
        Self::start_with(id, redis, store, &[])
    }

    /// [`Self::start`] with more (or overriding) environment.
    pub fn start_with(
        id: &str,
        redis: &RedisPrefix,
        store: &PgSchema,
        env: &[(&str, &str)],
    ) -> Self {
        let addr = free_addr();
        let mut child = Command::new(env!("CARGO_BIN_EXE_roomcast"))
            .env_clear()
            .env("ROOMCAST_JWT_SECRET", SECRET)
            .env("ROOMCAST_API_KEY", API_KEY)
            .env("ROOMCAST_BIND", addr.to_string())
            .env("ROOMCAST_BROKER", &redis.url)
            .env("ROOMCAST_REDIS_PREFIX", &redis.prefix)
            .env("ROOMCAST_STORE", store.url())
            .env("ROOMCAST_NODE_ID", id)
            .env("ROOMCAST_NODE_HEARTBEAT_MS", "200")
            .env("ROOMCAST_NODE_TTL_MS", "1000")
            .env("RUST_BACKTRACE", "0")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn roomcast");
        let stdout = Captured::read_from(child.stdout.take().expect("stdout"));
        let stderr = Captured::read_from(child.stderr.take().expect("stderr"));
        let mut node = Self {
            addr,
            child,
            stdout,
            stderr,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = node.child.try_wait().expect("try_wait") {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "{id} exited ({status}) instead of serving on {addr}\n{}",
                    node.logs()
                );
            }
            if healthz(addr) == Some(200) {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "{id}: no /healthz on {addr} within {PATIENCE:?}\n{}",
                node.logs()
            );
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL, as a crash: no close frame, no goodbye on the bus.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the node");
        let status = self.child.wait().expect("wait for the killed node");
        assert!(!status.success(), "the node was not killed: {status}");
    }

    /// Sends the process `signal` (`STOP`, `CONT`): a stopped node is alive to the
    /// cluster until its TTL runs out, but answers nothing.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// What the node printed, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout.text(),
            self.stderr.text()
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /healthz` over a raw connection: its status, `None` when nothing answers.
pub fn healthz(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// Clients

pub type Ws = WebSocketStream<MaybeTlsStream<AsyncTcpStream>>;

/// A chat as a member saw it (or as its sender had it acknowledged): its id and text.
pub type Chat = (String, String);

/// An HS256 token for `user`, valid for an hour.
pub fn sign(user: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let claims = json!({ "sub": user, "exp": now + 3600 });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

/// The next text frame as JSON; `None` once the connection is gone. Panics when nothing
/// arrives within [`PATIENCE`] (`who` names the client).
pub async fn next_json(ws: &mut Ws, who: &str) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .unwrap_or_else(|_| panic!("{who}: nothing within {PATIENCE:?}"));
        match frame {
            Some(Ok(Message::Text(text))) => {
                return Some(serde_json::from_str(&text).expect("a JSON frame"));
            }
            Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// The chats of [`ROOM`] that `frame` carries: itself, or those of a batch.
pub fn chats_in(frame: &Value) -> Vec<Chat> {
    let one = |chat: &Value| -> Option<Chat> {
        (chat["type"] == "chat" && chat["room"] == ROOM).then(|| {
            let id = chat["id"].as_str().expect("a string chat id").to_owned();
            let message = chat["message"].as_str().expect("a text message").to_owned();
            (id, message)
        })
    };
    match frame["type"].as_str() {
        Some("chat") => one(frame).into_iter().collect(),
        Some("batch_messages") => frame["messages"]
            .as_array()
            .map(|messages| messages.iter().filter_map(one).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A client of `user` on `addr`, authenticated, in [`ROOM`].
pub async fn member(addr: SocketAddr, user: &str) -> Ws {
    let url = format!("ws://{addr}/ws");
    let (mut ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .expect("connect");
    let auth = json!({ "type": "auth", "token": sign(user) });
    ws.send(Message::text(auth.to_string()))
        .await
        .expect("send auth");
    let ok = next_json(&mut ws, user).await.expect("an answer to auth");
    assert_eq!(ok["type"], "auth_ok", "{user}: {ok}");
    let joined = request(
        &mut ws,
        user,
        json!({ "type": "join", "room": ROOM, "id": "join" }),
    )
    .await;
    assert_eq!(joined["ok"], true, "{user}: {joined}");
    ws
}

/// Sends `message` and returns the answer to its `id`, skipping everything else.
pub async fn request(ws: &mut Ws, who: &str, message: Value) -> Value {
    let id = message["id"].clone();
    ws.send(Message::text(message.to_string()))
        .await
        .expect("send");
    loop {
        let answer = next_json(ws, who)
            .await
            .unwrap_or_else(|| panic!("{who}: the connection ended before the answer"));
        if answer["id"] == id && (answer["type"] == "reply" || answer["type"] == "error") {
            return answer;
        }
    }
}

/// Sends one chat and returns it as acknowledged (the reply's id), or panics.
pub async fn send_chat(ws: &mut Ws, who: &str, n: usize, content: String) -> Chat {
    let reply = request(
        ws,
        who,
        json!({ "type": "chat", "room": ROOM, "content": content, "id": n }),
    )
    .await;
    assert_eq!(
        reply["ok"], true,
        "{who}: chat {n} not acknowledged: {reply}"
    );
    let id = reply["data"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{who}: no id in {reply}"))
        .to_owned();
    (id, content)
}
