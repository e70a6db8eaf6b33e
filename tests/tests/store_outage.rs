//! A node whose PostgreSQL goes away and comes back, seen from its clients: while the
//! store is out of reach a chat is answered with `error` `internal` ("store unavailable,
//! try again") within a bounded time and reaches nobody, `/healthz` says `unavailable`;
//! once PostgreSQL is back the same node (not restarted) accepts chat again, and the
//! history holds exactly the chats that were acknowledged. PostgreSQL is reached through
//! a TCP proxy of the test's own, which the test cuts and restores. Needs the test
//! PostgreSQL server (skipped loudly without it, failed under
//! `ROOMCAST_REQUIRE_SERVICES=1`).

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use roomcast_server::Settings;
use roomcast_tests::proxy::Proxy;
use roomcast_tests::services::{self, PgSchema};
use roomcast_tests::{Client, TestServer};
use serde_json::{Value, json};
use sqlx::postgres::PgConnectOptions;

/// How long a request needing the store may take while it is away: the pool's wait for a
/// connection (3 s), plus room for a slow machine.
const BOUND: Duration = Duration::from_secs(6);

/// How long the node may take to use PostgreSQL again once it is back.
const RECOVERY: Duration = Duration::from_secs(10);

/// What a client is told when the store failed.
const STORE_UNAVAILABLE: &str = "store unavailable, try again";

const ROOM: &str = "lobby";
/// Sends a chat with request id `id` and returns its answer (`reply` or `error`) and
/// every other message the sender got before it.
async fn chat(client: &mut Client, text: &str, id: &str) -> (Value, Vec<Value>) {
    client
        .send(json!({ "type": "chat", "room": ROOM, "content": { "text": text }, "id": id }))
        .await;
    let mut before = Vec::new();
    loop {
        let message = client.recv().await;
        if message["id"] == id && (message["type"] == "reply" || message["type"] == "error") {
            return (message, before);
        }
        before.push(message);
    }
}

/// The next `chat` a member gets (skipping anything else).
async fn next_chat(client: &mut Client) -> Value {
    client.wait_for("chat").await
}

/// `GET /healthz`: status and body.
async fn health(server: &TestServer) -> (u16, Value) {
    roomcast_tests::response(
        server
            .http(reqwest::Method::GET, "/healthz")
            .timeout(BOUND)
            .send()
            .await,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(
    clippy::print_stderr,
    reason = "the timings, for whoever reads a slow run's output"
)]
async fn a_node_whose_store_goes_away_refuses_chat_in_bounded_time_and_recovers_by_itself()
-> Result<()> {
    let Some(schema) = PgSchema::create().await else {
        return Ok(());
    };
    let url = schema.url();
    let options = PgConnectOptions::from_str(&url)?;
    let target = format!("{}:{}", options.get_host(), options.get_port());
    anyhow::ensure!(
        url.contains(&target),
        "the test database URL {} must spell out {target} for the proxy to replace it",
        services::database_url()
    );
    let mut proxy = Proxy::start(&target).await;
    let url = url.replacen(&target, &proxy.addr.to_string(), 1);
    let server = TestServer::with(Settings {
        store: Some(url),
        ..Settings::default()
    })
    .await;

    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.join(ROOM).await;
    bob.join(ROOM).await;

    // Before: acknowledged, stored, delivered.
    let mut acknowledged: Vec<(Value, String)> = Vec::new();
    let (answer, _) = chat(&mut alice, "before", "c-before").await;
    assert_eq!(answer["type"], "reply", "{answer}");
    let first_id = answer["data"]["id"].clone();
    assert!(first_id.is_string(), "{answer}");
    assert_eq!(next_chat(&mut bob).await["id"], first_id);
    acknowledged.push((first_id, "before".to_owned()));

    // PostgreSQL goes away.
    proxy.cut();
    let started = Instant::now();
    let (answer, before) = tokio::time::timeout(BOUND, chat(&mut alice, "during", "c-during"))
        .await
        .context("a chat while the store is away got no answer in time")?;
    let took = started.elapsed();
    assert!(took < BOUND, "the error took {took:?}");
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(answer["code"], "internal", "{answer}");
    assert_eq!(answer["message"], STORE_UNAVAILABLE, "{answer}");
    assert!(
        before.iter().all(|m| m["type"] != "chat"),
        "the sender got the refused chat: {before:?}"
    );
    if let Some(message) = bob.try_recv(Duration::from_millis(500)).await {
        assert_ne!(
            message["type"], "chat",
            "a refused chat was delivered: {message}"
        );
    }
    let (status, body) = health(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["store"]["connected"], false, "{body}");
    let outage = started.elapsed();

    // PostgreSQL is back: the same node, not restarted, accepts chat again.
    proxy.restore().await;
    let restored = Instant::now();
    let mut attempt = 0;
    let recovered_id = loop {
        attempt += 1;
        let id = format!("c-after-{attempt}");
        let (answer, _) = chat(&mut alice, "after", &id).await;
        if answer["type"] == "reply" {
            break answer["data"]["id"].clone();
        }
        assert_eq!(answer["code"], "internal", "{answer}");
        assert!(
            restored.elapsed() < RECOVERY,
            "still refused {:?} after PostgreSQL came back: {answer}",
            restored.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let recovery = restored.elapsed();
    assert!(recovered_id.is_string());
    assert_eq!(next_chat(&mut bob).await["id"], recovered_id);
    acknowledged.push((recovered_id, "after".to_owned()));
    let (status, body) = health(&server).await;
    assert_eq!((status, &body["status"]), (200, &json!("ok")), "{body}");
    assert_eq!(body["store"]["connected"], true, "{body}");

    // Nothing acknowledged lost, nothing refused stored.
    let history = alice
        .request(json!({ "type": "history", "room": ROOM }), json!("h-1"))
        .await;
    assert_eq!(history["type"], "reply", "{history}");
    let items = history["data"]["items"]
        .as_array()
        .context("history items")?;
    let stored: Vec<(Value, String)> = items
        .iter()
        .map(|item| {
            let text = item["message"]["text"].as_str().unwrap_or_default();
            (item["id"].clone(), text.to_owned())
        })
        .collect();
    assert_eq!(stored, acknowledged, "{history}");

    eprintln!(
        "store_outage: error after {took:?}, outage checks {outage:?}, \
         recovered after {recovery:?} in {attempt} attempt(s)"
    );
    server.stop().await;
    Ok(())
}
