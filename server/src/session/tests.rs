//! The connection's timers on paused time: the heartbeat, the auth timeout, token expiry
//! and the ack deadline, each asserted to the millisecond instead of slept through. The
//! socket is an in-memory duplex pipe carrying real WebSocket framing; the session is
//! the one `run` starts. Anything that touches the store (admission) happens before the
//! clock is paused, because the SQLite store waits on its own thread and a paused clock
//! would jump past a pool timeout while it does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomcast_protocol::{ClientId, User, UserId};
use serde_json::{Value, json};
use tokio::io::DuplexStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::auth::Identity;
use crate::broker::LocalBroker;
use crate::clock::now_ms;
use crate::config::{Config, Settings};
use crate::context::Context;
use crate::hub::{AckOutcome, Hub};

type Socket = WebSocketStream<DuplexStream>;

async fn hub() -> Hub {
    let config = Config::from_settings(Settings {
        dev: Some(true),
        heartbeat_interval_ms: Some(25_000),
        heartbeat_timeout_ms: Some(10_000),
        auth_timeout_ms: Some(10_000),
        ..Settings::default()
    })
    .unwrap();
    let store = crate::store::open("sqlite::memory:").await.unwrap();
    Hub::start(config, Arc::new(LocalBroker::new()), store)
        .await
        .unwrap()
}

/// A session on `hub` over an in-memory socket; `identity` as if the upgrade carried a
/// token.
async fn connect(hub: &Hub, identity: Option<Identity>) -> Socket {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let ctx = Context {
        hub: hub.clone(),
        handler: None,
    };
    let config = crate::ws_config(hub.config().limits.max_frame_bytes);
    let server = WebSocketStream::from_raw_socket(server, Role::Server, Some(config)).await;
    let permit = hub.try_reserve().unwrap();
    let remote = SocketAddr::from(([127, 0, 0, 1], 1));
    tokio::spawn(super::start(&ctx, server, remote, false, identity, permit));
    WebSocketStream::from_raw_socket(client, Role::Client, None).await
}

fn identity(user: &str, expires_at: Option<u64>) -> Identity {
    Identity {
        user: User::new(
            UserId::new(user).unwrap(),
            None,
            Vec::new(),
            serde_json::Map::new(),
        ),
        expires_at,
    }
}

/// The next text frame as JSON, or the close code.
async fn next(socket: &mut Socket) -> Result<Value, u16> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(Some(frame)))) => return Err(u16::from(frame.code)),
            Some(Ok(_)) => {}
            other => panic!("socket ended without a close frame: {other:?}"),
        }
    }
}

/// Waits until the session is past admission and in its read loop (it answers a `ping`
/// request only there), then pauses the clock: from here on nothing waits on the store.
async fn pause_when_admitted(socket: &mut Socket) {
    socket
        .send(Message::text(r#"{"type":"ping","id":"settle"}"#))
        .await
        .unwrap();
    expect(socket, "pong").await;
    tokio::time::pause();
}

/// `elapsed` is `expected`, give or take the timer wheel's millisecond rounding up.
fn assert_about(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed >= expected && elapsed <= expected + Duration::from_millis(1),
        "{elapsed:?}, expected {expected:?}"
    );
}

async fn expect(socket: &mut Socket, kind: &str) -> Value {
    let frame = next(socket).await.expect("a frame, not a close");
    assert_eq!(frame["type"], kind, "{frame}");
    frame
}

#[tokio::test]
async fn a_ping_goes_out_one_interval_after_auth_and_silence_closes_with_4002() {
    let hub = hub().await;
    let mut socket = connect(&hub, Some(identity("alice", None))).await;
    expect(&mut socket, "auth_ok").await;
    pause_when_admitted(&mut socket).await;
    let start = Instant::now();
    expect(&mut socket, "ping").await;
    // The heartbeat timer started when the session did, a moment before the pause.
    let ping_at = start.elapsed();
    assert!(ping_at <= Duration::from_millis(25_001), "{ping_at:?}");
    assert!(ping_at > Duration::from_millis(24_900), "{ping_at:?}");
    let ping = Instant::now();
    assert_eq!(next(&mut socket).await, Err(4002));
    assert_about(ping.elapsed(), Duration::from_secs(10));
}

#[tokio::test]
async fn any_frame_answers_a_ping_and_the_next_is_an_interval_after_the_last() {
    let hub = hub().await;
    let mut socket = connect(&hub, Some(identity("alice", None))).await;
    expect(&mut socket, "auth_ok").await;
    pause_when_admitted(&mut socket).await;
    expect(&mut socket, "ping").await;
    let first = Instant::now();
    tokio::time::sleep(Duration::from_secs(9)).await;
    // Not a pong: any frame proves the client is there.
    socket
        .send(Message::text(
            json!({ "type": "ping", "id": 1 }).to_string(),
        ))
        .await
        .unwrap();
    expect(&mut socket, "pong").await;
    expect(&mut socket, "ping").await;
    assert_about(first.elapsed(), Duration::from_secs(25));
}

#[tokio::test]
async fn no_auth_within_the_timeout_closes_with_4001() {
    let hub = hub().await;
    tokio::time::pause();
    let start = Instant::now();
    let mut socket = connect(&hub, None).await;
    assert_eq!(next(&mut socket).await, Err(4001));
    assert_about(start.elapsed(), Duration::from_secs(10));
}

#[tokio::test]
async fn an_expired_token_closes_with_4001_at_its_expiry_and_not_before() {
    let hub = hub().await;
    let expires_at = now_ms() + 60_000;
    let mut socket = connect(&hub, Some(identity("alice", Some(expires_at)))).await;
    expect(&mut socket, "auth_ok").await;
    pause_when_admitted(&mut socket).await;
    let start = Instant::now();
    // Heartbeats come and are answered meanwhile; the expiry is what closes.
    let code = loop {
        match next(&mut socket).await {
            Ok(frame) if frame["type"] == "ping" => {
                socket
                    .send(Message::text(r#"{"type":"pong"}"#))
                    .await
                    .unwrap();
            }
            Ok(frame) => panic!("unexpected {frame}"),
            Err(code) => break code,
        }
    };
    assert_eq!(code, 4001);
    let closed_at = start.elapsed();
    // The expiry was measured against the wall clock just before the pause.
    assert!(closed_at <= Duration::from_millis(60_001), "{closed_at:?}");
    assert!(closed_at > Duration::from_millis(59_900), "{closed_at:?}");
}

#[tokio::test]
async fn an_unacknowledged_message_times_out_at_its_deadline() {
    let hub = hub().await;
    let mut socket = connect(&hub, Some(identity("alice", None))).await;
    let ok = expect(&mut socket, "auth_ok").await;
    let id = ClientId::new(ok["clientId"].as_str().unwrap()).unwrap();
    pause_when_admitted(&mut socket).await;
    let start = Instant::now();
    let outcome = hub
        .send_with_ack(
            &id,
            &json!({ "type": "confirm" }),
            Some(Duration::from_secs(3)),
        )
        .await
        .unwrap();
    assert_eq!(outcome, AckOutcome::Timeout);
    // Deadlines cross the seam as wall-clock milliseconds: exact to one.
    let waited = start.elapsed();
    assert!(waited <= Duration::from_millis(3_001), "{waited:?}");
    assert!(waited >= Duration::from_millis(2_998), "{waited:?}");
    let confirm = expect(&mut socket, "confirm").await;
    assert_eq!(confirm["_ack"], true);
    // A late ack is harmless and says nobody waited.
    socket
        .send(Message::text(
            json!({ "type": "ack", "messageId": confirm["_messageId"], "id": 2 }).to_string(),
        ))
        .await
        .unwrap();
    let reply = expect(&mut socket, "reply").await;
    assert_eq!(reply["data"]["awaited"], false, "{reply}");
}

#[tokio::test]
async fn an_acknowledged_message_succeeds_as_soon_as_the_ack_arrives() {
    let hub = hub().await;
    let mut socket = connect(&hub, Some(identity("alice", None))).await;
    let ok = expect(&mut socket, "auth_ok").await;
    let id = ClientId::new(ok["clientId"].as_str().unwrap()).unwrap();
    pause_when_admitted(&mut socket).await;
    let start = Instant::now();
    let sender = {
        let hub = hub.clone();
        tokio::spawn(async move {
            hub.send_with_ack(
                &id,
                &json!({ "type": "confirm" }),
                Some(Duration::from_secs(30)),
            )
            .await
        })
    };
    let confirm = expect(&mut socket, "confirm").await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    socket
        .send(Message::text(
            json!({ "type": "ack", "messageId": confirm["_messageId"] }).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(sender.await.unwrap().unwrap(), AckOutcome::Success);
    assert_about(start.elapsed(), Duration::from_secs(7));
}
