//! What the tests of the `roomcast` binary as a process (`cli.rs`, `cli_server.rs`) share:
//! the command with a cleared environment, a free port, a child process whose output is
//! captured and which is killed when its guard drops, HTTP over a raw `TcpStream` (this
//! crate has no HTTP client) and a WebSocket login.

// Each file that includes this is its own test crate and uses its own part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream as AsyncTcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a server may take to answer `/healthz`, or a process to exit.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Poll interval for anything awaited.
pub const POLL: Duration = Duration::from_millis(20);

/// The binary with an empty environment.
pub fn roomcast() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_roomcast"));
    command.env_clear();
    // No database file in the source tree: each process gets an in-memory store.
    command.env("ROOMCAST_STORE", "sqlite::memory:");
    command
}

/// A loopback address whose port was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr")
}

/// Output read from a child's pipe by a background thread.
#[derive(Debug, Clone, Default)]
pub struct Captured(pub Arc<Mutex<String>>);

impl Captured {
    pub fn read_from(pipe: impl Read + Send + 'static) -> (Self, JoinHandle<()>) {
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

    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A running `roomcast` process, killed when dropped.
#[derive(Debug)]
pub struct Process {
    pub child: Child,
    pub stdout: Captured,
    pub stderr: Captured,
    pub readers: Vec<JoinHandle<()>>,
}

impl Process {
    pub fn spawn(mut command: Command) -> Self {
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
    pub fn serve(command: Command, addr: SocketAddr) -> Self {
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
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
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
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Waits (bounded) until stdout holds something `find` recognizes.
    pub fn wait_stdout<T>(&self, find: impl Fn(&str) -> Option<T>) -> T {
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

    pub fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }

    pub fn logs(&self) -> String {
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
pub fn run_to_exit(command: Command) -> (ExitStatus, String, String) {
    let mut process = Process::spawn(command);
    let status = process.wait_exit(PATIENCE);
    (status, process.stdout.text(), process.stderr.text())
}

/// `GET path` over a raw connection; `None` when nothing answers. Returns the status
/// and the body (`Connection: close`, so the body is everything after the headers).
pub fn http(addr: SocketAddr, path: &str, key: Option<&str>) -> Option<(u16, String)> {
    http_request(addr, "GET", path, key, None)
}

/// Any request over a raw connection, with an optional JSON body.
pub fn http_request(
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
pub fn stats_status(addr: SocketAddr, key: &str) -> u16 {
    http(addr, "/api/stats", Some(key))
        .expect("/api/stats answers")
        .0
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The first word of `text` shaped like a JWT (`eyJ...` with three parts).
pub fn find_jwt(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|word| word.starts_with("eyJ") && word.split('.').count() == 3)
        .map(str::to_owned)
}

pub type Ws = WebSocketStream<MaybeTlsStream<AsyncTcpStream>>;

/// The next text frame as JSON, within [`PATIENCE`].
pub async fn next_json(ws: &mut Ws) -> Value {
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
pub async fn ws_login(addr: SocketAddr, token: &str) -> (Ws, Value) {
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
