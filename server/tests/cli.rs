//! The `roomcast` binary as a process: `--help`, refusing to start without real secrets,
//! the `token` subcommand, configuration layering (file < environment < flags), dev mode
//! and graceful shutdown on SIGTERM/SIGINT.
//!
//! Every child runs with a cleared environment (nothing from the test run leaks in) on a
//! port picked free just before, and is killed when its guard drops, so no server
//! outlives its test. HTTP goes over a raw `TcpStream`: this crate has no HTTP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use roomcast_server::config::{DEV_API_KEY, DEV_JWT_SECRET};
use serde_json::{Value, json};
use tokio::net::TcpStream as AsyncTcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a server may take to answer `/healthz`, or a process to exit.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a graceful shutdown may take, end to end.
const SHUTDOWN: Duration = Duration::from_secs(5);
/// Poll interval for anything awaited.
const POLL: Duration = Duration::from_millis(20);
/// Secret and key for servers that are not in dev mode.
const SECRET: &str = "cli-test-secret";
const API_KEY: &str = "cli-test-api-key";

/// Every setting's environment variable, as `--help` must list them.
const ENV_VARS: [&str; 30] = [
    "ROOMCAST_CONFIG",
    "ROOMCAST_BIND",
    "ROOMCAST_JWT_SECRET",
    "ROOMCAST_API_KEY",
    "ROOMCAST_DEV",
    "ROOMCAST_ALLOW_TOKENS_WITHOUT_EXPIRY",
    "ROOMCAST_AUTH_TIMEOUT_MS",
    "ROOMCAST_HEARTBEAT_INTERVAL_MS",
    "ROOMCAST_HEARTBEAT_TIMEOUT_MS",
    "ROOMCAST_RATE_LIMIT_PER_SEC",
    "ROOMCAST_RATE_LIMIT_BURST",
    "ROOMCAST_MAX_CONNECTIONS",
    "ROOMCAST_MAX_CONNECTIONS_PER_USER",
    "ROOMCAST_MAX_FRAME_BYTES",
    "ROOMCAST_MAX_CONTENT_BYTES",
    "ROOMCAST_MAX_ROOMS_PER_CONNECTION",
    "ROOMCAST_PRESENCE_LIMIT",
    "ROOMCAST_SEND_QUEUE",
    "ROOMCAST_DEFAULT_ROOMS",
    "ROOMCAST_STATIC_DIR",
    "ROOMCAST_STORE",
    "ROOMCAST_COMPRESSION_THRESHOLD",
    "ROOMCAST_REPLAY_LIMIT",
    "ROOMCAST_BATCH_MAX_MESSAGES",
    "ROOMCAST_BATCH_WINDOW_MS",
    "ROOMCAST_ACK_TIMEOUT_MS",
    "ROOMCAST_WEBHOOK_URL",
    "ROOMCAST_WEBHOOK_TIMEOUT_MS",
    "ROOMCAST_STATS_INTERVAL_MS",
    "ROOMCAST_DEMO",
];

/// The binary with an empty environment.
fn roomcast() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roomcast"));
    command.env_clear();
    // No database file in the source tree: each process gets an in-memory store.
    command.env("ROOMCAST_STORE", "sqlite::memory:");
    command
}

/// A loopback address whose port was free a moment ago.
fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr")
}

/// Output read from a child's pipe by a background thread.
#[derive(Debug, Clone, Default)]
struct Captured(Arc<Mutex<String>>);

impl Captured {
    fn read_from(pipe: impl Read + Send + 'static) -> (Self, JoinHandle<()>) {
        let captured = Self::default();
        let sink = captured.clone();
        let thread = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.0.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
        (captured, thread)
    }

    fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A running `roomcast` process, killed when dropped.
#[derive(Debug)]
struct Process {
    child: Child,
    stdout: Captured,
    stderr: Captured,
    readers: Vec<JoinHandle<()>>,
}

impl Process {
    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn roomcast");
        let (stdout, out_thread) = Captured::read_from(child.stdout.take().expect("stdout"));
        let (stderr, err_thread) = Captured::read_from(child.stderr.take().expect("stderr"));
        Self {
            child,
            stdout,
            stderr,
            readers: vec![out_thread, err_thread],
        }
    }

    /// Spawns a server and waits until `addr` answers `/healthz` with 200.
    fn serve(command: Command, addr: SocketAddr) -> Self {
        let mut process = Self::spawn(command);
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = process.child.try_wait().expect("try_wait") {
                process.join_readers();
                panic!(
                    "the server exited ({status}) instead of serving on {addr}\n{}",
                    process.logs()
                );
            }
            if http(addr, "/healthz", None).is_some_and(|(status, _)| status == 200) {
                return process;
            }
            assert!(
                Instant::now() < deadline,
                "no /healthz on {addr} within {PATIENCE:?}\n{}",
                process.logs()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits for the process to exit within `within` and returns its status; all of its
    /// output has been captured by then.
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.join_readers();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {within:?}\n{}",
                self.logs()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Sends a signal by name (`TERM`, `INT`) with the `kill` command.
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Waits (bounded) until stdout holds something `find` recognizes.
    fn wait_stdout<T>(&self, find: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(found) = find(&self.stdout.text()) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "not found on stdout\n{}",
                self.logs()
            );
            std::thread::sleep(POLL);
        }
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }

    fn logs(&self) -> String {
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            self.stdout.text(),
            self.stderr.text()
        )
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command that must end on its own; returns its status, stdout and stderr.
fn run_to_exit(command: Command) -> (ExitStatus, String, String) {
    let mut process = Process::spawn(command);
    let status = process.wait_exit(PATIENCE);
    (status, process.stdout.text(), process.stderr.text())
}

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

/// `GET path` over a raw connection; `None` when nothing answers. Returns the status
/// and the body (`Connection: close`, so the body is everything after the headers).
fn http(addr: SocketAddr, path: &str, key: Option<&str>) -> Option<(u16, String)> {
    http_request(addr, "GET", path, key, None)
}

/// Any request over a raw connection, with an optional JSON body.
fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = key
        .map(|key| format!("Authorization: Bearer {key}\r\n"))
        .unwrap_or_default();
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())?;
    Some((status, body))
}

/// The status of `GET /api/stats` with `key`.
fn stats_status(addr: SocketAddr, key: &str) -> u16 {
    http(addr, "/api/stats", Some(key))
        .expect("/api/stats answers")
        .0
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

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The first word of `text` shaped like a JWT (`eyJ...` with three parts).
fn find_jwt(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|word| word.starts_with("eyJ") && word.split('.').count() == 3)
        .map(str::to_owned)
}

type Ws = WebSocketStream<MaybeTlsStream<AsyncTcpStream>>;

/// The next text frame as JSON, within [`PATIENCE`].
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("timed out waiting for a message")
            .expect("connection ended")
            .expect("read");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

/// A WebSocket client that sent `auth` with `token`; returns it and the `auth_ok`.
async fn ws_login(addr: SocketAddr, token: &str) -> (Ws, Value) {
    let url = format!("ws://{addr}/ws");
    let (mut ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .expect("connect");
    let auth = json!({ "type": "auth", "token": token }).to_string();
    ws.send(Message::text(auth)).await.expect("send auth");
    let ok = next_json(&mut ws).await;
    assert_eq!(ok["type"], "auth_ok", "{ok}");
    (ws, ok)
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

fn write_file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config file");
    path
}

#[test]
fn help_lists_every_setting_with_its_env_var() {
    let mut command = roomcast();
    command.arg("--help");
    let (status, stdout, stderr) = run_to_exit(command);
    assert!(status.success(), "{status}\n{stderr}");
    let missing: Vec<_> = ENV_VARS
        .iter()
        .filter(|var| !stdout.contains(*var))
        .collect();
    assert!(missing.is_empty(), "--help omits {missing:?}:\n{stdout}");
}

/// Environment variables for a child: name, value.
type Env = &'static [(&'static str, &'static str)];

#[test]
fn refuses_to_start_without_real_secrets_outside_dev_mode() {
    const JWT: &str = "ROOMCAST_JWT_SECRET";
    const KEY: &str = "ROOMCAST_API_KEY";
    // (case, environment, what the error must name)
    #[rustfmt::skip]
    let cases: [(&str, Env, &str); 6] = [
        ("nothing set",     &[],                                  JWT),
        ("dev mode off",    &[("ROOMCAST_DEV", "0"), (KEY, "k")], JWT),
        ("no API key",      &[(JWT, "s")],                        KEY),
        ("no secret",       &[(KEY, "k")],                        JWT),
        ("the dev secret",  &[(JWT, DEV_JWT_SECRET), (KEY, "k")], JWT),
        ("the dev API key", &[(JWT, "s"), (KEY, DEV_API_KEY)],    KEY),
    ];
    for (case, env, needle) in cases {
        let addr = free_addr();
        let mut command = roomcast();
        command
            .envs(env.iter().copied())
            .arg("--bind")
            .arg(addr.to_string());
        let (status, stdout, stderr) = run_to_exit(command);
        assert!(
            !status.success(),
            "{case}: started anyway\n{stdout}{stderr}"
        );
        assert!(
            stderr.contains(needle),
            "{case}: the error does not name {needle}:\n{stderr}"
        );
        if env
            .iter()
            .any(|(_, v)| *v == DEV_JWT_SECRET || *v == DEV_API_KEY)
        {
            assert!(
                stderr.contains("development default"),
                "{case}: the error does not say why:\n{stderr}"
            );
        }
        assert!(http(addr, "/healthz", None).is_none(), "{case}: port open");
    }
}

#[test]
fn token_needs_only_the_jwt_secret() {
    let mut command = roomcast();
    command
        .env("ROOMCAST_JWT_SECRET", "x")
        .args(["token", "--user", "alice"]);
    let (status, stdout, stderr) = run_to_exit(command);
    assert!(status.success(), "{status}\n{stderr}");
    assert!(find_jwt(&stdout).is_some(), "no token on stdout: {stdout}");
}

#[tokio::test]
async fn token_prints_a_jwt_with_the_claims_that_the_server_accepts() {
    let mut command = roomcast();
    command
        .env("ROOMCAST_JWT_SECRET", "x")
        .env("ROOMCAST_API_KEY", "k")
        .args([
            "token", "--user", "alice", "--role", "admin", "--name", "Alice",
        ]);
    let (status, stdout, stderr) = run_to_exit(command);
    assert!(status.success(), "{status}\n{stderr}");
    let token = stdout.trim();
    assert_eq!(find_jwt(token).as_deref(), Some(token), "stdout: {stdout}");
    // Decoding checks the signature with the secret too.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(b"x"),
        &validation,
    )
    .expect("an HS256 token signed with the secret")
    .claims;
    assert_eq!(claims["sub"], "alice", "{claims}");
    assert_eq!(claims["roles"], json!(["admin"]), "{claims}");
    assert_eq!(claims["name"], "Alice", "{claims}");
    let exp = claims["exp"].as_u64().expect("numeric exp");
    assert!(exp > now_secs(), "exp in the past: {claims}");

    let addr = free_addr();
    let mut server = roomcast();
    server
        .env("ROOMCAST_JWT_SECRET", "x")
        .env("ROOMCAST_API_KEY", "k")
        .args(["--bind", &addr.to_string()]);
    let _server = Process::serve(server, addr);
    let (_ws, ok) = ws_login(addr, token).await;
    assert_eq!(ok["userId"], "alice", "{ok}");
    assert_eq!(ok["user"]["name"], "Alice", "{ok}");
    assert_eq!(ok["user"]["roles"], json!(["admin"]), "{ok}");
}

#[test]
fn a_config_file_sets_the_address_and_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let file = write_file(
        dir.path(),
        "roomcast.toml",
        &format!(
            "bind = \"{addr}\"\njwt_secret = \"file-secret\"\napi_key = \"file-key\"\n\
             rate_limit_burst = 7\n"
        ),
    );
    let mut command = roomcast();
    command.arg("--config").arg(&file);
    let _server = Process::serve(command, addr);
    assert_eq!(stats_status(addr, "file-key"), 200);
    assert_eq!(stats_status(addr, "wrong-key"), 401);
    assert_eq!(http(addr, "/api/stats", None).map(|r| r.0), Some(401));
}

#[test]
fn env_overrides_the_file_and_flags_override_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file_addr = free_addr();
    let file = write_file(
        dir.path(),
        "roomcast.toml",
        &format!("bind = \"{file_addr}\"\njwt_secret = \"file-secret\"\napi_key = \"file-key\"\n"),
    );

    // The environment beats the file (the file is named by ROOMCAST_CONFIG here).
    let env_addr = free_addr();
    let mut command = roomcast();
    command
        .env("ROOMCAST_CONFIG", &file)
        .env("ROOMCAST_BIND", env_addr.to_string())
        .env("ROOMCAST_API_KEY", "env-key");
    let server = Process::serve(command, env_addr);
    assert_eq!(stats_status(env_addr, "env-key"), 200);
    assert_eq!(stats_status(env_addr, "file-key"), 401);
    assert!(
        http(file_addr, "/healthz", None).is_none(),
        "bound the file's address"
    );
    drop(server);

    // Flags beat the environment.
    let flag_addr = free_addr();
    let mut command = roomcast();
    command
        .env("ROOMCAST_BIND", env_addr.to_string())
        .env("ROOMCAST_API_KEY", "env-key")
        .arg("--config")
        .arg(&file)
        .args(["--bind", &flag_addr.to_string(), "--api-key", "flag-key"]);
    let _server = Process::serve(command, flag_addr);
    assert_eq!(stats_status(flag_addr, "flag-key"), 200);
    assert_eq!(stats_status(flag_addr, "env-key"), 401);
    assert!(
        http(env_addr, "/healthz", None).is_none(),
        "bound the env's address"
    );
}

#[test]
fn a_bad_config_file_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unknown = write_file(
        dir.path(),
        "unknown.toml",
        "jwt_secret = \"s\"\napi_key = \"k\"\nbnd = \"127.0.0.1:1\"\n",
    );
    let missing = dir.path().join("missing.toml");
    // (case, file, what the error must mention)
    let cases = [
        ("unknown key", &unknown, vec!["bnd", "unknown.toml"]),
        ("missing file", &missing, vec!["missing.toml"]),
    ];
    for (case, file, needles) in cases {
        let addr = free_addr();
        let mut command = roomcast();
        command
            .arg("--config")
            .arg(file)
            .args(["--bind", &addr.to_string()]);
        let (status, _, stderr) = run_to_exit(command);
        assert!(!status.success(), "{case}: started anyway");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{case}: no `{needle}` in:\n{stderr}"
            );
        }
    }
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
/// that silently reaches no other.
#[test]
fn a_node_whose_redis_is_unreachable_exits_1_naming_it() {
    let closed = free_addr();
    let url = format!("redis://{closed}/0");
    let addr = free_addr();
    let mut command = server_command(addr);
    command
        .env("ROOMCAST_BROKER", &url)
        .env("ROOMCAST_STORE", "sqlite::memory:")
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
