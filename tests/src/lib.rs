//! Shared helpers for the end-to-end tests: a real server on `127.0.0.1:0` (the same
//! `roomcast_server::run` the binary calls), WebSocket clients over real sockets, and an
//! HTTP client for the API. Every receive is bounded by a timeout.

pub mod cluster;
pub mod proxy;
pub mod services;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomcast_server::config::{DEV_API_KEY, DEV_JWT_SECRET};
use roomcast_server::{Config, Settings};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected event may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// A server running in this process.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The API key.
    pub api_key: String,
    secret: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), roomcast_server::ServerError>>>,
}

impl TestServer {
    /// A dev-mode server with default settings.
    pub async fn start() -> Self {
        Self::with(Settings::default()).await
    }

    /// A dev-mode server with some settings changed (`dev: Some(false)` runs it outside
    /// dev mode: give it a secret and an API key then).
    pub async fn with(settings: Settings) -> Self {
        Self::serve(settings, None, None).await
    }

    /// A dev-mode server fanning out through `broker` (a test's own, e.g. one that
    /// records every delivery), started the way an embedding app starts one.
    pub async fn with_broker(
        settings: Settings,
        broker: std::sync::Arc<dyn roomcast_server::broker::Broker>,
    ) -> Self {
        Self::serve(settings, None, Some(broker)).await
    }

    /// A dev-mode server embedding an application handler, the way an app that uses the
    /// server as a library does (`Hub::start` + `run_with`).
    pub async fn with_handler(
        settings: Settings,
        handler: std::sync::Arc<dyn roomcast_server::Handler>,
    ) -> Self {
        Self::serve(settings, Some(handler), None).await
    }

    async fn serve(
        settings: Settings,
        handler: Option<std::sync::Arc<dyn roomcast_server::Handler>>,
        broker: Option<std::sync::Arc<dyn roomcast_server::broker::Broker>>,
    ) -> Self {
        // Each test server gets its own in-memory store unless the test names one.
        let store = settings
            .store
            .clone()
            .or_else(|| Some("sqlite::memory:".to_owned()));
        let settings = Settings {
            dev: settings.dev.or(Some(true)),
            store,
            ..settings
        };
        let config = Config::from_settings(settings).expect("valid test config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let api_key = config.auth.api_key.clone();
        let secret = config.auth.jwt_secret.clone();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let task = if handler.is_none() && broker.is_none() {
            tokio::spawn(roomcast_server::run(listener, config, shutdown))
        } else {
            let store = roomcast_server::store::open(&config.store.url)
                .await
                .expect("open the test store");
            let broker = broker.unwrap_or_else(|| {
                std::sync::Arc::new(roomcast_server::broker::LocalBroker::new())
            });
            let hub = roomcast_server::Hub::start(config, broker, store)
                .await
                .expect("start the hub");
            tokio::spawn(roomcast_server::run_with(listener, hub, handler, shutdown))
        };
        Self {
            addr,
            api_key,
            secret,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `ws://addr/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A token for `user` signed with the server's secret, valid for an hour.
    pub fn token(&self, user: &str) -> String {
        self.token_with(json!({ "sub": user }))
    }

    /// A token with these claims (`exp` is added unless present).
    pub fn token_with(&self, mut claims: Value) -> String {
        if claims.get("exp").is_none() {
            claims["exp"] = json!(roomcast_server::now_ms() / 1000 + 3600);
        }
        sign(&self.secret, &claims)
    }

    /// A connected, unauthenticated client.
    pub async fn connect(&self) -> Client {
        self.connect_url(&self.ws_url()).await
    }

    /// A connected client at a custom URL (query parameters).
    pub async fn connect_url(&self, url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect timed out")
            .expect("connect");
        Client {
            ws,
            client_id: String::new(),
        }
    }

    /// A client authenticated as `user` via the `auth` message; `auth_ok` consumed.
    pub async fn login(&self, user: &str) -> Client {
        self.login_with(json!({ "sub": user })).await
    }

    /// A client authenticated with these claims; `auth_ok` consumed.
    pub async fn login_with(&self, claims: Value) -> Client {
        let mut client = self.connect().await;
        client
            .send(json!({ "type": "auth", "token": self.token_with(claims) }))
            .await;
        let ok = client.recv().await;
        assert_eq!(ok["type"], "auth_ok", "{ok}");
        client.client_id = ok["clientId"].as_str().expect("clientId").to_owned();
        client
    }

    /// An API request with the key.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(&self.api_key)
    }

    /// An HTTP request without the key.
    pub fn http(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path))
    }

    /// `GET` with the key; returns status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        response(self.api(reqwest::Method::GET, path).send().await).await
    }

    /// Polls `/healthz` until its `status` is `status` (10 s at most); returns the body.
    pub async fn health_becomes(&self, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (_, body) = self.get("/healthz").await;
            if body["status"] == status {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/healthz never said {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `POST` JSON with the key; returns status and JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        response(
            self.api(reqwest::Method::POST, path)
                .json(&body)
                .send()
                .await,
        )
        .await
    }

    /// `PUT` JSON with the key; returns status and JSON body.
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        response(
            self.api(reqwest::Method::PUT, path)
                .json(&body)
                .send()
                .await,
        )
        .await
    }

    /// `DELETE` with the key; returns status and JSON body.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        response(self.api(reqwest::Method::DELETE, path).send().await).await
    }

    /// One series (`name` or `name{labels}`) of `/metrics`, fetched without a key;
    /// `None` when the server does not render it.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self
            .http(reqwest::Method::GET, "/metrics")
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("the metrics text");
        text.lines().find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }

    /// Stops the server and waits for `run` to return.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("server stopped in time")
                .expect("server task")
                .expect("run returned Ok");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Status and JSON body (or `Null` for an empty or non-JSON body).
pub async fn response(result: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    let response = result.expect("http request");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Signs claims with HS256.
pub fn sign(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// A fresh SQLite file path for one test (`ROOMCAST_STORE=sqlite://...`), unique per
/// process, call and test name, with nothing left at it from an earlier run.
#[must_use]
pub fn sqlite_store_file(test: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "roomcast-test-{}-{n}-{test}.db",
        std::process::id()
    ));
    remove_sqlite_store(&path);
    path
}

/// Removes a SQLite store file and its `-wal` and `-shm` companions, if there.
pub fn remove_sqlite_store(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// The dev secret and key, for tests that need them by name.
pub const SECRET: &str = DEV_JWT_SECRET;
/// The dev API key.
pub const API_KEY: &str = DEV_API_KEY;

/// What a client saw end its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// A close frame with this code.
    Code(u16),
    /// The stream ended without a close frame.
    Dropped,
}

/// A WebSocket test client.
#[derive(Debug)]
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `clientId` from `auth_ok`, once authenticated.
    pub client_id: String,
}

impl Client {
    /// Sends a JSON message.
    pub async fn send(&mut self, message: Value) {
        self.send_text(&message.to_string()).await;
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    /// Sends a raw frame.
    pub async fn send_frame(&mut self, frame: Message) {
        self.ws.send(frame).await.expect("send");
    }

    /// The next JSON message (answering nothing), failing after [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for a message")
                .expect("connection ended")
                .expect("read");
            match frame {
                Message::Text(text) => {
                    return serde_json::from_str(&text).expect("server sent JSON");
                }
                Message::Close(frame) => panic!("connection closed: {frame:?}"),
                _ => {}
            }
        }
    }

    /// The next JSON message if one arrives within `window`, `None` on silence.
    pub async fn try_recv(&mut self, window: Duration) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(window, self.ws.next()).await.ok()?;
            match frame.expect("connection ended").expect("read") {
                Message::Text(text) => {
                    return Some(serde_json::from_str(&text).expect("server sent JSON"));
                }
                Message::Close(frame) => panic!("connection closed: {frame:?}"),
                _ => {}
            }
        }
    }

    /// The next message, which must have this `type`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let message = self.recv().await;
        assert_eq!(message["type"], kind, "expected {kind}, got {message}");
        message
    }

    /// Skips messages until one of type `kind` arrives.
    pub async fn wait_for(&mut self, kind: &str) -> Value {
        loop {
            let message = self.recv().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    /// Sends `message` with `"id": id` and returns the answer with that id (`reply`,
    /// `error` or `pong`), skipping anything else.
    pub async fn request(&mut self, mut message: Value, id: Value) -> Value {
        message["id"] = id.clone();
        self.send(message).await;
        loop {
            let answer = self.recv().await;
            if answer["id"] == id && answer["type"] != "ping" {
                return answer;
            }
        }
    }

    /// Joins a room (with a request id) and returns the `user_list` it got; the reply is
    /// checked and consumed.
    pub async fn join(&mut self, room: &str) -> Value {
        self.send(json!({ "type": "join", "room": room, "id": format!("join-{room}") }))
            .await;
        let list = self.expect("user_list").await;
        let reply = self.expect("reply").await;
        assert_eq!(reply["id"], format!("join-{room}"));
        list
    }

    /// No message arrives within `window`.
    pub async fn expect_silence(&mut self, window: Duration) {
        if let Ok(Some(Ok(frame))) = tokio::time::timeout(window, self.ws.next()).await {
            panic!("expected silence, got {frame:?}");
        }
    }

    /// Reads until the connection ends; returns the close code (messages before it are
    /// returned too, in order).
    pub async fn closed(&mut self) -> (Vec<Value>, Closed) {
        let mut seen = Vec::new();
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match next {
                Some(Ok(Message::Text(text))) => {
                    seen.push(serde_json::from_str(&text).expect("JSON"));
                }
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (seen, Closed::Code(u16::from(frame.code)));
                }
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                    return (seen, Closed::Dropped);
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// Reads until the connection ends and returns the close code, which must exist.
    pub async fn close_code(&mut self) -> u16 {
        match self.closed().await.1 {
            Closed::Code(code) => code,
            Closed::Dropped => panic!("connection dropped without a close frame"),
        }
    }

    /// Closes from the client side (1000).
    pub async fn close(mut self) {
        let _ = self
            .ws
            .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: CloseCode::Normal,
                reason: "bye".into(),
            }))
            .await;
    }
}
