//! What the tests of a connection's life around its identity (`auth.rs`, `heartbeat.rs`,
//! `connection_limits.rs`) share: raw upgrades, `auth` requests and refusals, the
//! assertions that a connection is usable and that the server still serves everyone
//! else, and closing a test's clients and server.

// Each file that includes this is its own test crate and uses its own part of it.
#![allow(dead_code)]

use roomcast_server::now_ms;
use roomcast_tests::{Client, Closed, TestServer, WAIT};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type RawSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// `ts` is an integer millisecond timestamp within a minute of now.
pub fn assert_recent(ts: &Value) {
    let ts = ts.as_u64().unwrap_or_else(|| panic!("timestamp {ts}"));
    assert!(now_ms().abs_diff(ts) < 60_000, "timestamp {ts} is not now");
}

/// `message` is an `error` with this code, carrying `id` (or no `id` at all).
pub fn assert_error(message: &Value, code: &str, id: Option<&Value>) {
    assert_eq!(message["type"], "error", "{message}");
    assert_eq!(message["code"], code, "{message}");
    assert!(message["message"].is_string(), "{message}");
    assert_eq!(message.get("id"), id, "{message}");
}

/// Sends `auth` with `token` and request id `id`; returns the next message.
pub async fn send_auth(client: &mut Client, token: &str, id: Option<&str>) -> Value {
    let mut auth = json!({ "type": "auth", "token": token });
    if let Some(id) = id {
        auth["id"] = json!(id);
    }
    client.send(auth).await;
    client.recv().await
}

/// Sends `auth` and expects a refusal: exactly one `error` with `code` (and the request
/// id), then the close `close_code`, and never an `auth_ok`.
pub async fn expect_auth_refused(client: &mut Client, token: &str, code: &str, close_code: u16) {
    client
        .send(json!({ "type": "auth", "token": token, "id": "refused" }))
        .await;
    let (seen, closed) = client.closed().await;
    assert_eq!(
        seen.len(),
        1,
        "exactly one error before the close: {seen:?}"
    );
    assert_error(&seen[0], code, Some(&json!("refused")));
    assert_eq!(closed, Closed::Code(close_code), "after {seen:?}");
}

/// A `ping` with an id is answered by a `pong` with that id: the connection is usable.
pub async fn assert_usable(client: &mut Client) {
    let pong = client
        .request(json!({ "type": "ping" }), json!("usable"))
        .await;
    assert_eq!(pong["type"], "pong", "{pong}");
}

/// A fresh user can still log in and ping: the server survived whatever came before.
pub async fn assert_still_serving(server: &TestServer) {
    let mut witness = server.login("witness").await;
    assert_usable(&mut witness).await;
    witness.close().await;
}

/// A raw upgrade: the socket, or the HTTP status of a refusal.
pub async fn upgrade(url: &str) -> Result<RawSocket, u16> {
    let result = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("upgrade timed out");
    match result {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(other) => panic!("upgrade failed without an HTTP status: {other}"),
    }
}

/// Hangs up the clients (answering the close of those the server closed), then stops the
/// server, which would otherwise wait out the closing handshake of clients that no longer
/// read.
pub async fn finish(server: TestServer, clients: impl IntoIterator<Item = Client>) {
    for client in clients {
        client.close().await;
    }
    server.stop().await;
}

pub fn query_url(server: &TestServer, token: &str) -> String {
    format!("{}?token={token}", server.ws_url())
}
