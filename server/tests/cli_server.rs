//! The `roomcast` server as a process: graceful shutdown on SIGTERM/SIGINT (close 1001 to
//! every client, exit 0), dev mode's printed token, the default store (`roomcast.db` in
//! the working directory, kept over a restart), and a node whose Redis is unreachable
//! exiting 1 and naming it (on a PostgreSQL schema of its own: skipped loudly without
//! PostgreSQL, failed under `ROOMCAST_REQUIRE_SERVICES=1`).
//!
//! Every child runs with a cleared environment (nothing from the test run leaks in) on a
//! port picked free just before, and is killed when its guard drops, so no server
//! outlives its test.

mod cli_common;
// Only its PostgreSQL schema, for the cluster node's shared store.
mod cluster_support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use cli_common::*;
use cluster_support::PgSchema;
use futures_util::{SinkExt, StreamExt};
use roomcast_server::config::{DEV_API_KEY, DEV_JWT_SECRET};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// How long a graceful shutdown may take, end to end.
const SHUTDOWN: Duration = Duration::from_secs(5);

/// Secret and key for servers that are not in dev mode.
const SECRET: &str = "cli-test-secret";

const API_KEY: &str = "cli-test-api-key";

/// A server outside dev mode with the test secret and key, on a free port.
fn server_command(addr: SocketAddr) -> Command {
    let mut command = roomcast();
    command
        .env("ROOMCAST_JWT_SECRET", SECRET)
        .env("ROOMCAST_API_KEY", API_KEY)
        .arg("--bind")
        .arg(addr.to_string());
    command
}

/// An HS256 token for `user` valid for an hour.
fn sign(secret: &str, user: &str) -> String {
    let claims = json!({ "sub": user, "exp": now_secs() + 3600 });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// Reads until a close frame and returns its code (`None`: dropped without one), then
/// keeps reading so that the close reply goes out and the server can hang up, as any
/// well-behaved client does.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    let read = async {
        let mut code = None;
        while let Some(Ok(frame)) = ws.next().await {
            if let Message::Close(frame) = frame {
                code = frame.map(|f| u16::from(f.code));
            }
        }
        code
    };
    tokio::time::timeout(SHUTDOWN, read)
        .await
        .expect("timed out waiting for the close")
}

/// Two authenticated clients get close 1001 on `signal` and the process exits with 0.
async fn shuts_down_gracefully_on(signal: &str) {
    let addr = free_addr();
    let mut server = Process::serve(server_command(addr), addr);
    let (mut alice, _) = ws_login(addr, &sign(SECRET, "alice")).await;
    let (mut bob, _) = ws_login(addr, &sign(SECRET, "bob")).await;
    let started = Instant::now();
    server.signal(signal);
    assert_eq!(
        close_code(&mut alice).await,
        Some(1001),
        "alice, SIG{signal}"
    );
    assert_eq!(close_code(&mut bob).await, Some(1001), "bob, SIG{signal}");
    let status = server.wait_exit(SHUTDOWN.saturating_sub(started.elapsed()));
    assert_eq!(
        status.code(),
        Some(0),
        "SIG{signal}: {status}\n{}",
        server.logs()
    );
}

#[tokio::test]
async fn sigterm_closes_every_connection_with_1001_and_exits_0() {
    shuts_down_gracefully_on("TERM").await;
}

#[tokio::test]
async fn sigint_closes_every_connection_with_1001_and_exits_0() {
    shuts_down_gracefully_on("INT").await;
}

#[tokio::test]
async fn dev_mode_prints_a_token_that_authenticates() {
    let addr = free_addr();
    let mut command = roomcast();
    command
        .env("ROOMCAST_DEV", "1")
        .args(["--bind", &addr.to_string()]);
    let server = Process::serve(command, addr);
    let token = server.wait_stdout(find_jwt);
    let banner = server.stdout.text();
    assert!(
        banner.contains(&addr.to_string()),
        "the real address: {banner}"
    );
    assert!(banner.contains(DEV_API_KEY), "the API key: {banner}");
    // Whoever the banner's token is for, it is signed with the dev secret and the
    // server takes it as that user.
    let claims = jsonwebtoken::decode::<Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(DEV_JWT_SECRET.as_bytes()),
        &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
    )
    .expect("a token signed with the dev secret")
    .claims;
    let (_ws, ok) = ws_login(addr, &token).await;
    assert_eq!(ok["userId"], claims["sub"], "{ok}");
    // Dev mode uses the well-known key.
    assert_eq!(stats_status(addr, DEV_API_KEY), 200);
}

/// Sends `message` and returns the answer to its `id`, skipping anything else.
async fn request(ws: &mut Ws, message: Value) -> Value {
    let id = message["id"].clone();
    ws.send(Message::text(message.to_string()))
        .await
        .expect("send");
    loop {
        let answer = next_json(ws).await;
        if answer["id"] == id && (answer["type"] == "reply" || answer["type"] == "error") {
            return answer;
        }
    }
}

#[tokio::test]
async fn the_default_store_is_roomcast_db_in_the_working_directory_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let addr = free_addr();
    let start = || {
        let mut command = server_command(addr);
        command.env_remove("ROOMCAST_STORE").current_dir(dir.path());
        Process::serve(command, addr)
    };
    let mut server = start();
    let (mut alice, _) = ws_login(addr, &sign(SECRET, "alice")).await;
    let joined = request(
        &mut alice,
        json!({ "type": "join", "room": "lobby", "id": "j" }),
    )
    .await;
    assert_eq!(joined["type"], "reply", "{joined}");
    let sent = request(
        &mut alice,
        json!({ "type": "chat", "room": "lobby", "content": "kept", "id": "c" }),
    )
    .await;
    let chat_id = sent["data"]["id"].clone();
    assert!(chat_id.is_string(), "{sent}");
    let notify = json!({ "userId": "bob", "title": "Welcome", "content": "while you were away" });
    let (status, body) = http_request(addr, "POST", "/api/notify", Some(API_KEY), Some(&notify))
        .expect("/api/notify answers");
    assert_eq!(status, 200, "{body}");
    server.signal("TERM");
    assert_eq!(
        server.wait_exit(SHUTDOWN).code(),
        Some(0),
        "{}",
        server.logs()
    );
    assert!(
        dir.path().join("roomcast.db").exists(),
        "the default store is ./roomcast.db"
    );

    let _server = start();
    let (status, body) = http(addr, "/api/rooms/lobby/history", Some(API_KEY)).expect("history");
    assert_eq!(status, 200, "{body}");
    let history: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(history["items"][0]["id"], chat_id, "{history}");
    assert_eq!(history["items"][0]["message"], "kept", "{history}");
    let (mut bob, _) = ws_login(addr, &sign(SECRET, "bob")).await;
    let pending = next_json(&mut bob).await;
    assert_eq!(pending["type"], "notification", "{pending}");
    assert_eq!(pending["title"], "Welcome", "{pending}");
}

/// A cluster node whose Redis does not answer stops at once, with one line that names
/// the URL and the cause, and exit code 1 (CLUSTER.md §2.8), rather than serving a node
/// that silently reaches no other. Its store is a real shared one (a cluster refuses any
/// other before it opens anything, `cli.rs`), so that what stops it is Redis.
#[tokio::test]
async fn a_node_whose_redis_is_unreachable_exits_1_naming_it() {
    let Some(store) = PgSchema::create().await else {
        return;
    };
    let closed = free_addr();
    let url = format!("redis://{closed}/0");
    let addr = free_addr();
    let mut command = server_command(addr);
    command
        .env("ROOMCAST_BROKER", &url)
        .env("ROOMCAST_STORE", store.url())
        .env("RUST_BACKTRACE", "0");
    let started = Instant::now();
    let (status, stdout, stderr) = run_to_exit(command);
    assert_eq!(status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it gave up within the probe time, not after {:?}",
        started.elapsed()
    );
    let line = stderr
        .lines()
        .find(|l| l.contains("cannot reach Redis"))
        .unwrap_or_else(|| panic!("no clear error in:\n{stderr}"));
    assert!(line.contains(&url), "the line names the URL: {line}");
    assert!(line.contains("refused"), "the line names the cause: {line}");
    assert!(
        http(addr, "/healthz", None).is_none(),
        "the port stayed closed"
    );
}
