//! Chat recovery under concurrent publishing (CONTRACT §4 `join` with `since`): a member
//! that goes away again and again (a `leave`, a clean close, a dropped socket, a new
//! connection opened before the old one closes) while others publish as fast as they can
//! still sees every chat of the room exactly once, in order.

mod recovery_common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use recovery_common::*;
use roomcast_server::Settings;
use roomcast_tests::{Client, TestServer, WAIT};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Recovery under concurrent publishing
// ---------------------------------------------------------------------------------------

/// The room of the concurrency test.
const STREAM: &str = "stream";

/// Chats in the room before the watcher first joins (not expected by it).
const SEEDS: usize = 3;

/// Chats each publisher sends at least, whenever the watcher is done.
const MIN_PER_PUBLISHER: usize = 60;

/// Most chats one publisher sends; with the seeds the history stays within one page.
const MAX_PER_PUBLISHER: usize = 150;

/// Times the watcher goes away and comes back while the publishers run.
const CYCLES: usize = 8;

/// Chats the watcher reads between two departures.
const CHATS_BETWEEN_CYCLES: usize = 8;

/// How the watcher goes away.
#[derive(Debug, Clone, Copy)]
enum Away {
    /// `leave`, then `join` with `since` on the same connection.
    Leave,
    /// Close (1000), then a new connection.
    Close,
    /// Drop the socket without a close frame, then a new connection.
    Drop,
    /// Stop reading, open a new connection and rejoin on it, then close the old one.
    Overlap,
}

const AWAY: [Away; 4] = [Away::Leave, Away::Close, Away::Drop, Away::Overlap];

/// The chat ids the watcher has seen, across all its joins, in arrival order.
#[derive(Debug, Default)]
struct Seen {
    ids: Vec<String>,
    rejoins: usize,
}

impl Seen {
    fn last(&self) -> &str {
        self.ids.last().map_or("", String::as_str)
    }

    /// Records a chat; anything else is ignored.
    fn record(&mut self, message: &Value) {
        if message["type"] != "chat" {
            return;
        }
        assert_eq!(message["room"], STREAM, "{message}");
        let id = message["id"].as_str().expect("chat id").to_owned();
        assert!(
            id.as_str() > self.last(),
            "chat {id} arrived after {}: twice or out of order",
            self.last()
        );
        self.ids.push(id);
    }

    /// Reads until the answer to request `id`, recording the chats before it.
    async fn until_answer(&mut self, client: &mut Client, id: &str) -> Value {
        loop {
            let message = client.recv().await;
            if message["id"] == id && message["type"] != "chat" {
                return message;
            }
            self.record(&message);
        }
    }

    /// Reads until `n` chats in all have been seen.
    async fn read_until(&mut self, client: &mut Client, n: usize) {
        while self.ids.len() < n {
            let message = client.recv().await;
            self.record(&message);
        }
    }

    /// Waits until the room holds a chat newer than the last one seen, so every absence
    /// misses something.
    async fn wait_for_a_missed_chat(&self, server: &TestServer) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (status, body) = server
                .get(&format!("/api/rooms/{STREAM}/history?limit=1"))
                .await;
            assert_eq!(status, 200, "{body}");
            if body["items"][0]["id"].as_str().unwrap_or_default() > self.last() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no chat was published while the watcher was away (publishers done?)"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Joins with `since` = the last chat seen: `user_list` first, then the missed chats,
    /// the answer after at least the replayed ones.
    async fn rejoin(&mut self, client: &mut Client) {
        self.rejoins += 1;
        let id = format!("rejoin-{}", self.rejoins);
        client
            .send(json!({ "type": "join", "room": STREAM, "since": self.last(), "id": id }))
            .await;
        let list = next(client).await;
        assert_eq!(
            list["type"], "user_list",
            "nothing before the user_list: {list}"
        );
        let before = self.ids.len();
        let answer = self.until_answer(client, &id).await;
        assert_eq!(answer["type"], "reply", "{answer}");
        assert_eq!(answer["data"]["recovered"], true, "{answer}");
        let replayed = answer["data"]["replayed"].as_u64().expect("replayed");
        assert!(replayed >= 1, "the watcher missed a chat: {answer}");
        assert!(
            (self.ids.len() - before) as u64 >= replayed,
            "the reply came before the {replayed} replayed chats"
        );
    }

    /// Goes away the way `away` says, lets at least one chat go by, and comes back.
    async fn away_and_back(
        &mut self,
        server: &TestServer,
        mut client: Client,
        away: Away,
    ) -> Client {
        match away {
            Away::Leave => {
                client
                    .send(json!({ "type": "leave", "room": STREAM, "id": "leave" }))
                    .await;
                let answer = self.until_answer(&mut client, "leave").await;
                assert_eq!(answer["type"], "reply", "{answer}");
                self.wait_for_a_missed_chat(server).await;
            }
            Away::Close => {
                client.close().await;
                self.wait_for_a_missed_chat(server).await;
                client = server.login("watcher").await;
            }
            Away::Drop => {
                drop(client);
                self.wait_for_a_missed_chat(server).await;
                client = server.login("watcher").await;
            }
            Away::Overlap => {
                self.wait_for_a_missed_chat(server).await;
                let mut fresh = server.login("watcher").await;
                self.rejoin(&mut fresh).await;
                client.close().await;
                return fresh;
            }
        }
        self.rejoin(&mut client).await;
        client
    }
}

/// Sends chats without waiting for replies, at least [`MIN_PER_PUBLISHER`] and then until
/// told to stop (or the cap), then reads
/// until every one of them is answered; returns how many it sent, and the connection
/// (kept open so that its `user_leave` does not reach the watcher).
async fn publish_until_stopped(
    mut client: Client,
    name: String,
    stop: Arc<AtomicBool>,
) -> (usize, Client) {
    let more = |sent: usize| {
        sent < MIN_PER_PUBLISHER || (sent < MAX_PER_PUBLISHER && !stop.load(Ordering::Relaxed))
    };
    let mut sent = 0;
    while more(sent) {
        let tag = format!("{name}-{sent}");
        client
            .send(json!({ "type": "chat", "room": STREAM, "content": tag, "id": tag }))
            .await;
        sent += 1;
        // Spread the publishing out so the watcher's absences fall in the middle of it.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut answered = HashSet::new();
    while answered.len() < sent {
        let message = client.recv().await;
        assert_ne!(message["type"], "error", "{name}: {message}");
        if message["type"] == "reply" {
            let id = message["id"].as_str().expect("reply id").to_owned();
            assert!(answered.insert(id), "{name}: answered twice: {message}");
        }
    }
    (sent, client)
}

#[tokio::test]
async fn a_member_coming_and_going_during_heavy_publishing_sees_every_chat_exactly_once() {
    let server = TestServer::with(Settings {
        rate_limit_per_sec: Some(100_000),
        rate_limit_burst: Some(100_000),
        send_queue_bytes: Some(8 << 20),
        ..Settings::default()
    })
    .await;
    let mut publishers = Vec::new();
    for i in 0..3 {
        let mut client = server.login(&format!("publisher-{i}")).await;
        client.join(STREAM).await;
        publishers.push(client);
    }
    for i in 0..SEEDS {
        say(&mut publishers[0], STREAM, &format!("seed-{i}")).await;
    }
    let mut watcher = server.login("watcher").await;
    watcher.join(STREAM).await;

    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = publishers
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            tokio::spawn(publish_until_stopped(client, format!("p{i}"), stop.clone()))
        })
        .collect();

    let mut seen = Seen::default();
    for cycle in 0..CYCLES {
        seen.read_until(&mut watcher, seen.ids.len() + CHATS_BETWEEN_CYCLES)
            .await;
        watcher = seen
            .away_and_back(&server, watcher, AWAY[cycle % AWAY.len()])
            .await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut published = 0;
    let mut publishers = Vec::new();
    for task in tasks {
        let (sent, client) = task.await.expect("publisher");
        published += sent;
        publishers.push(client);
    }
    seen.read_until(&mut watcher, published).await;
    watcher.expect_silence(QUIET).await;

    let (status, body) = server
        .get(&format!("/api/rooms/{STREAM}/history?limit=500"))
        .await;
    assert_eq!(status, 200, "{body}");
    let history: Vec<String> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(history.len(), SEEDS + published, "every chat is stored");
    assert!(history.is_sorted(), "history ids sort in order");
    let expected = &history[SEEDS..];
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !seen.ids.contains(*id))
        .collect();
    assert!(missing.is_empty(), "the watcher never saw {missing:?}");
    assert_eq!(
        seen.ids, expected,
        "every chat after the first join, once, in order"
    );
}
