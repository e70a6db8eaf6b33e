//! A cluster of two real `roomcast` processes sharing one Redis and one PostgreSQL
//! schema: when a node is killed with SIGKILL, its clients reconnect to the other node
//! with `since` and lose nothing that was acknowledged, and get nothing twice
//! (CONTRACT §10).
//!
//! The services come from `ROOMCAST_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and `ROOMCAST_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379/0`), as in the `roomcast-tests` crate (which this package cannot
//! depend on): a fresh schema and a fresh key prefix per run, both removed on drop, even
//! when the test fails. An unreachable service skips the test loudly, or fails it when
//! `ROOMCAST_REQUIRE_SERVICES=1`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection};
use tokio::net::TcpStream as AsyncTcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a node may take to answer `/healthz`, or a client to get an answer.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a service probe may take before the service counts as unreachable.
const PROBE: Duration = Duration::from_secs(3);
/// The whole test, end to end.
const WHOLE_TEST: Duration = Duration::from_secs(40);
/// Poll interval for anything awaited.
const POLL: Duration = Duration::from_millis(20);
const SECRET: &str = "cluster-kill-test-secret";
const API_KEY: &str = "cluster-kill-test-api-key";
const ROOM: &str = "r";
/// Chats the sender on node B sends, one by one.
const CHATS: usize = 40;
/// Node A is killed once this many of them are acknowledged.
const KILL_AFTER: usize = 15;
/// Chats acknowledged after the kill before X may reconnect: all of them must come back
/// in X's replay.
const WHILE_AWAY: usize = 10;
/// After which of the sender's chats the client on node A sends one of its own.
const FROM_A_AFTER: [usize; 3] = [3, 8, 13];

// ---------------------------------------------------------------------------------------
// Services

/// Skips (returns `None` after a loud message) or, when services are required, panics.
#[expect(
    clippy::print_stderr,
    reason = "a skip must be loud, and stderr is what the test harness shows"
)]
fn unavailable<T>(service: &str, url: &str, cause: &str) -> Option<T> {
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

fn fresh_name(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A fresh schema on the test PostgreSQL server, dropped with everything in it on drop.
#[derive(Debug)]
struct PgSchema {
    name: String,
    server: String,
}

impl PgSchema {
    async fn create() -> Option<Self> {
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
    fn url(&self) -> String {
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
struct RedisPrefix {
    prefix: String,
    url: String,
}

impl RedisPrefix {
    async fn create() -> Option<Self> {
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
fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr")
}

/// A child's output, read by a background thread (shown when the test fails).
#[derive(Debug, Clone, Default)]
struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn read_from(pipe: impl Read + Send + 'static) -> Self {
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

    fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A running `roomcast` node, killed (SIGKILL) when dropped.
#[derive(Debug)]
struct Node {
    addr: SocketAddr,
    child: Child,
    stdout: Captured,
    stderr: Captured,
}

impl Node {
    /// Starts node `id` of the cluster and waits until it answers `/healthz` with 200.
    fn start(id: &str, redis: &RedisPrefix, store: &PgSchema) -> Self {
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
    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the node");
        let status = self.child.wait().expect("wait for the killed node");
        assert!(!status.success(), "the node was not killed: {status}");
    }

    /// What the node printed, for failure messages.
    fn logs(&self) -> String {
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
fn healthz(addr: SocketAddr) -> Option<u16> {
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

type Ws = WebSocketStream<MaybeTlsStream<AsyncTcpStream>>;

/// A chat as a member saw it (or as its sender had it acknowledged): its id and text.
type Chat = (String, String);

/// An HS256 token for `user`, valid for an hour.
fn sign(user: &str) -> String {
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
async fn next_json(ws: &mut Ws, who: &str) -> Option<Value> {
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
fn chats_in(frame: &Value) -> Vec<Chat> {
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
async fn member(addr: SocketAddr, user: &str) -> Ws {
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
async fn request(ws: &mut Ws, who: &str, message: Value) -> Value {
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
async fn send_chat(ws: &mut Ws, who: &str, n: usize, content: String) -> Chat {
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

/// Records `ws`'s chats until `done` names the last acknowledged id and that one has
/// arrived, then a little longer (a duplicate behind it would show).
async fn collect_until(
    ws: &mut Ws,
    who: &str,
    seen: &mut Vec<Chat>,
    done: oneshot::Receiver<String>,
) {
    let mut done = std::pin::pin!(done);
    let mut last: Option<String> = None;
    loop {
        if let Some(last) = &last
            && seen.last().is_some_and(|(id, _)| id >= last)
        {
            break;
        }
        tokio::select! {
            frame = next_json(ws, who) => {
                let frame = frame.unwrap_or_else(|| panic!("{who}: the connection ended"));
                seen.extend(chats_in(&frame));
            }
            id = &mut done, if last.is_none() => {
                last = Some(id.expect("the test tells when it is done"));
            }
        }
    }
    let linger = tokio::time::sleep(Duration::from_millis(300));
    tokio::pin!(linger);
    loop {
        tokio::select! {
            () = &mut linger => break,
            frame = next_json(ws, who) => {
                let frame = frame.unwrap_or_else(|| panic!("{who}: the connection ended"));
                seen.extend(chats_in(&frame));
            }
        }
    }
}

/// What client X went through.
#[derive(Debug)]
struct XReport {
    /// Every chat it saw, on node A and then on node B.
    seen: Vec<Chat>,
    /// How many of them it had seen when node A died.
    before_kill: usize,
    /// The reply to its `join` with `since` on node B.
    rejoin: Value,
    /// The chats between that `join` and its reply.
    before_reply: usize,
}

/// Client X: a member on node A until A dies, then on node B after `go`, with `since`.
async fn client_x(
    mut on_a: Ws,
    b: SocketAddr,
    go: oneshot::Receiver<()>,
    done: oneshot::Receiver<String>,
) -> XReport {
    let mut seen = Vec::new();
    while let Some(frame) = next_json(&mut on_a, "X on A").await {
        seen.extend(chats_in(&frame));
    }
    let before_kill = seen.len();
    let (since, _) = seen
        .last()
        .cloned()
        .expect("X saw chats on node A before it died");
    go.await.expect("the test lets X reconnect");

    let url = format!("ws://{b}/ws");
    let (mut ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .expect("X reconnects to node B");
    let auth = json!({ "type": "auth", "token": sign("x") });
    ws.send(Message::text(auth.to_string()))
        .await
        .expect("send auth");
    let ok = next_json(&mut ws, "X on B").await.expect("auth answered");
    assert_eq!(ok["type"], "auth_ok", "X on B: {ok}");
    let join = json!({ "type": "join", "room": ROOM, "since": since, "id": "rejoin" });
    ws.send(Message::text(join.to_string()))
        .await
        .expect("send join");
    let rejoin = loop {
        let frame = next_json(&mut ws, "X on B")
            .await
            .expect("X's join with since answered");
        if frame["id"] == "rejoin" {
            break frame;
        }
        seen.extend(chats_in(&frame));
    };
    let before_reply = seen.len() - before_kill;
    collect_until(&mut ws, "X on B", &mut seen, done).await;
    XReport {
        seen,
        before_kill,
        rejoin,
        before_reply,
    }
}

/// `seen` is exactly `acked`: same chats, each once, in id order.
fn assert_exactly(who: &str, seen: &[Chat], acked: &[Chat], logs: &str) {
    let missing: Vec<_> = acked.iter().filter(|c| !seen.contains(c)).collect();
    let mut twice: Vec<_> = seen
        .iter()
        .filter(|c| seen.iter().filter(|d| d == c).count() > 1)
        .collect();
    twice.dedup();
    assert!(
        seen == acked,
        "{who} did not see every acknowledged chat exactly once in order\n\
         missing: {missing:?}\ntwice: {twice:?}\nseen: {seen:?}\nacked: {acked:?}\n{logs}"
    );
}

// ---------------------------------------------------------------------------------------
// The test

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_clients_recover_every_acknowledged_chat_on_another_node() {
    let Some(redis) = RedisPrefix::create().await else {
        return;
    };
    let Some(store) = PgSchema::create().await else {
        return;
    };
    tokio::time::timeout(WHOLE_TEST, kill_and_recover(&redis, &store))
        .await
        .unwrap_or_else(|_| panic!("the test took more than {WHOLE_TEST:?}"));
    // The nodes are gone by now; `store` and `redis` drop here, and on a panic too.
}

async fn kill_and_recover(redis: &RedisPrefix, store: &PgSchema) {
    // One after the other: both migrate the fresh schema at start.
    let mut a = Node::start("node-a", redis, store);
    let b = Node::start("node-b", redis, store);

    let x = member(a.addr, "x").await;
    let mut w = member(a.addr, "w").await;
    let mut y = member(b.addr, "y").await;
    let mut s = member(b.addr, "s").await;

    let (y_done, y_done_rx) = oneshot::channel();
    let y_task = tokio::spawn(async move {
        let mut seen = Vec::new();
        collect_until(&mut y, "Y on B", &mut seen, y_done_rx).await;
        seen
    });
    let (go, go_rx) = oneshot::channel();
    let (x_done, x_done_rx) = oneshot::channel();
    let x_task = tokio::spawn(client_x(x, b.addr, go_rx, x_done_rx));

    let mut acked: Vec<Chat> = Vec::new();
    let mut go = Some(go);
    for i in 0..CHATS {
        if i == KILL_AFTER {
            a.kill();
        }
        if i == KILL_AFTER + WHILE_AWAY
            && let Some(go) = go.take()
        {
            // X may reconnect now: what it missed is stored and acknowledged.
            let _ = go.send(());
        }
        if i > KILL_AFTER + WHILE_AWAY {
            // Live chats while X rejoins, not all in one burst.
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        acked.push(send_chat(&mut s, "S on B", i, format!("s-{i}")).await);
        if FROM_A_AFTER.contains(&i) {
            acked.push(send_chat(&mut w, "W on A", 1000 + i, format!("w-{i}")).await);
        }
    }
    drop(w);

    // Ids are dense and ordered per room: a fresh room numbers its chats 1, 2, 3, ...
    let expected: Vec<String> = (1..=acked.len()).map(|n| format!("{n:016x}")).collect();
    let ids: Vec<&String> = acked.iter().map(|(id, _)| id).collect();
    assert_eq!(ids, expected.iter().collect::<Vec<_>>(), "acknowledged ids");

    let last = acked.last().expect("chats were sent").0.clone();
    let _ = y_done.send(last.clone());
    let _ = x_done.send(last);
    let y_seen = y_task.await.expect("Y's reader");
    let x = x_task.await.expect("X's client");

    let logs = format!("=== node-a ===\n{}=== node-b ===\n{}", a.logs(), b.logs());
    assert_exactly("Y (on B)", &y_seen, &acked, &logs);
    assert_exactly("X (on A, then on B)", &x.seen, &acked, &logs);
    // Node A delivered to X what B's sender sent before the kill, and X missed what was
    // sent while it was away: those came back in the replay, counted in the reply.
    assert!(
        x.before_kill >= 1 && x.before_kill <= KILL_AFTER + FROM_A_AFTER.len(),
        "X saw {} chats on A",
        x.before_kill
    );
    assert_eq!(x.rejoin["type"], "reply", "{}", x.rejoin);
    assert_eq!(x.rejoin["ok"], true, "{}", x.rejoin);
    assert_eq!(x.rejoin["data"]["room"], ROOM, "{}", x.rejoin);
    assert_eq!(x.rejoin["data"]["recovered"], true, "{}", x.rejoin);
    let replayed = x.rejoin["data"]["replayed"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_else(|| panic!("no replayed count: {}", x.rejoin));
    let missed = KILL_AFTER + FROM_A_AFTER.len() + WHILE_AWAY - x.before_kill;
    assert!(
        replayed >= missed && x.before_reply >= replayed,
        "replayed {replayed}, X missed at least {missed}, got {} before the reply",
        x.before_reply
    );
}

/// The members of a node killed outright leave presence within the TTL and a heartbeat:
/// a surviving node reaps them and the room hears `user_leave`, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_members_leave_the_room_within_the_ttl() {
    let Some(redis) = RedisPrefix::create().await else {
        return;
    };
    let Some(store) = PgSchema::create().await else {
        return;
    };
    let mut a = Node::start("node-a", &redis, &store);
    let b = Node::start("node-b", &redis, &store);
    let mut watcher = member(b.addr, "watcher").await;
    let _zed = member(a.addr, "zed").await;
    let joined = next_json(&mut watcher, "watcher").await.expect("a notice");
    assert_eq!(joined["type"], "user_join", "{joined}");
    assert_eq!(joined["user"]["userId"], "zed", "{joined}");

    a.kill();
    let killed = Instant::now();
    let left = next_json(&mut watcher, "watcher").await.expect("a notice");
    assert_eq!(left["type"], "user_leave", "{left}");
    assert_eq!(left["user"]["userId"], "zed", "{left}");
    // TTL 1 s + heartbeat 200 ms, and a beat of slack for the reaper's own timing.
    assert!(
        killed.elapsed() < Duration::from_millis(2_500),
        "zed left {:?} after the kill\n{}",
        killed.elapsed(),
        b.logs()
    );
    let quiet = tokio::time::timeout(
        Duration::from_millis(500),
        next_json(&mut watcher, "watcher"),
    )
    .await;
    assert!(
        quiet.is_err(),
        "one user_leave, nothing after it: {quiet:?}"
    );
}
