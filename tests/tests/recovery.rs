//! Chat recovery and filtered topics end to end (CONTRACT §4 `join` with `since`,
//! `subscribe`, `unsubscribe`; §5 filtered topics; §9 `POST /api/publish`): a member that
//! was away gets exactly what it missed, oldest first, then live traffic, even while
//! others publish as fast as they can; topic subscribers get one message with only the
//! items they chose, on every connection, after reconnects and restarts.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use roomcast_server::Settings;
use roomcast_tests::{Client, TestServer, WAIT, response};
use serde_json::{Value, json};

/// How long "nothing else arrives" is watched.
const QUIET: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Sends a chat and waits for its reply; returns the stored id.
async fn say(client: &mut Client, room: &str, content: &str) -> String {
    let reply = client
        .request(
            json!({ "type": "chat", "room": room, "content": content }),
            json!(format!("say-{content}")),
        )
        .await;
    assert_eq!(reply["type"], "reply", "{reply}");
    reply["data"]["id"].as_str().expect("chat id").to_owned()
}

/// Leaves `room`; the reply must come.
async fn leave(client: &mut Client, room: &str) {
    let reply = client
        .request(json!({ "type": "leave", "room": room }), json!("leave"))
        .await;
    assert_eq!(reply["type"], "reply", "{reply}");
}

/// The next message that is not a heartbeat `ping`.
async fn next(client: &mut Client) -> Value {
    loop {
        let message = client.recv().await;
        if message["type"] != "ping" {
            return message;
        }
    }
}

/// Reads the next `n` messages, which must all be `chat`; returns their contents.
async fn chats(client: &mut Client, n: usize) -> Vec<String> {
    let mut contents = Vec::new();
    for _ in 0..n {
        let chat = next(client).await;
        assert_eq!(chat["type"], "chat", "{chat}");
        contents.push(chat["message"].as_str().unwrap_or_default().to_owned());
    }
    contents
}

/// Joins `room` with `since`; the first message must be the `user_list`. Returns the
/// contents of the chats that arrive before the answer, and the answer.
async fn join_since(client: &mut Client, room: &str, since: Value) -> (Vec<String>, Value) {
    client
        .send(json!({ "type": "join", "room": room, "since": since, "id": "rejoin" }))
        .await;
    let list = next(client).await;
    assert_eq!(list["type"], "user_list", "{list}");
    assert_eq!(list["room"], room, "{list}");
    let mut contents = Vec::new();
    loop {
        let message = next(client).await;
        if message["id"] == "rejoin" && message["type"] != "chat" {
            return (contents, message);
        }
        assert_eq!(message["type"], "chat", "{message}");
        contents.push(message["message"].as_str().unwrap_or_default().to_owned());
    }
}

/// Bob in `lobby` first, then Alice, who has seen Bob's chats `seen-0`, `seen-1`.
/// Returns both and the id of the last chat Alice saw.
async fn lobby_with_history(server: &TestServer) -> (Client, Client, String) {
    let mut bob = server.login("bob").await;
    bob.join("lobby").await;
    let mut alice = server.login("alice").await;
    alice.join("lobby").await;
    say(&mut bob, "lobby", "seen-0").await;
    let last = say(&mut bob, "lobby", "seen-1").await;
    assert_eq!(chats(&mut alice, 2).await, ["seen-0", "seen-1"]);
    (alice, bob, last)
}

/// Bob says `missed-0` .. `missed-{n-1}` in `lobby`.
async fn say_missed(bob: &mut Client, n: usize) {
    for i in 0..n {
        say(bob, "lobby", &format!("missed-{i}")).await;
    }
}

/// `{prefix}-{i}` for each `i` of `range`.
fn strings(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i}")).collect()
}

/// Waits until the server no longer lists any connection of `user`.
async fn wait_until_gone(server: &TestServer, user: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = server.get("/api/connections").await;
        assert_eq!(status, 200, "{body}");
        let present = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|c| c["user"]["userId"] == user);
        if !present {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{user} is still connected: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fresh SQLite file path for one test.
fn store_file(test: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "roomcast-recovery-{}-{n}-{test}.db",
        std::process::id()
    ));
    remove_store(&path);
    path
}

fn remove_store(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

// ---------------------------------------------------------------------------------------
// Recovery basics
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rejoining_after_leave_replays_exactly_the_missed_chats_then_live_ones() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, last) = lobby_with_history(&server).await;
    leave(&mut alice, "lobby").await;
    say_missed(&mut bob, 3).await;

    let (replayed, answer) = join_since(&mut alice, "lobby", json!(last)).await;
    assert_eq!(
        replayed,
        strings("missed", 0..3),
        "oldest first, none twice"
    );
    assert_eq!(answer["type"], "reply", "{answer}");
    assert_eq!(
        answer["data"],
        json!({ "room": "lobby", "recovered": true, "replayed": 3 })
    );

    say(&mut bob, "lobby", "live").await;
    assert_eq!(chats(&mut alice, 1).await, ["live"]);
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn rejoining_on_a_new_connection_replays_what_the_closed_one_missed() {
    let server = TestServer::start().await;
    let (alice, mut bob, last) = lobby_with_history(&server).await;
    alice.close().await;
    say_missed(&mut bob, 4).await;

    let mut alice = server.login("alice").await;
    let (replayed, answer) = join_since(&mut alice, "lobby", json!(last)).await;
    assert_eq!(replayed, strings("missed", 0..4));
    assert_eq!(
        answer["data"],
        json!({ "room": "lobby", "recovered": true, "replayed": 4 })
    );
    say(&mut bob, "lobby", "live").await;
    assert_eq!(chats(&mut alice, 1).await, ["live"]);
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn the_replay_holds_only_the_joined_rooms_chats() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, last) = lobby_with_history(&server).await;
    bob.join("other").await;
    leave(&mut alice, "lobby").await;
    say(&mut bob, "other", "elsewhere").await;
    say(&mut bob, "lobby", "missed-0").await;

    let (replayed, answer) = join_since(&mut alice, "lobby", json!(last)).await;
    assert_eq!(replayed, ["missed-0"]);
    assert_eq!(answer["data"]["replayed"], 1, "{answer}");
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn since_the_newest_chat_replays_nothing() {
    let server = TestServer::start().await;
    let (mut alice, mut bob, last) = lobby_with_history(&server).await;
    leave(&mut alice, "lobby").await;

    let (replayed, answer) = join_since(&mut alice, "lobby", json!(last)).await;
    assert!(replayed.is_empty(), "{replayed:?}");
    assert_eq!(
        answer["data"],
        json!({ "room": "lobby", "recovered": true, "replayed": 0 })
    );
    say(&mut bob, "lobby", "live").await;
    assert_eq!(chats(&mut alice, 1).await, ["live"]);
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_since_beyond_the_rooms_newest_chat_is_not_recovered() {
    // What a client that outlived its server's store sends: the store started over, its
    // ids count from 1 again, and the client's position is beyond every one of them.
    let server = TestServer::start().await;
    let (mut alice, mut bob, last) = lobby_with_history(&server).await;
    leave(&mut alice, "lobby").await;
    let beyond = format!("{:016x}", u64::from_str_radix(&last, 16).unwrap() + 100);
    let (replayed, answer) = join_since(&mut alice, "lobby", json!(beyond)).await;
    assert!(replayed.is_empty(), "{replayed:?}");
    assert_eq!(
        answer["data"],
        json!({ "room": "lobby", "recovered": false, "replayed": 0 })
    );
    // A room with no chat at all is not recovered from a position either.
    let (replayed, answer) = join_since(&mut alice, "empty", json!(last)).await;
    assert!(replayed.is_empty(), "{replayed:?}");
    assert_eq!(answer["data"]["recovered"], false, "{answer}");
    say(&mut bob, "lobby", "live").await;
    assert_eq!(chats(&mut alice, 1).await, ["live"]);
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn join_with_an_invalid_since_is_bad_request_and_joins_nothing() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    bob.join("lobby").await;
    say(&mut bob, "lobby", "m0").await;
    let mut alice = server.login("alice").await;
    let cases = [
        ("empty", json!("")),
        ("slash", json!("a/b")),
        ("space", json!("a b")),
        ("too long", json!("x".repeat(65))),
        ("number", json!(42)),
        ("array", json!(["x"])),
        ("object", json!({ "id": "x" })),
    ];
    for (n, (case, since)) in cases.into_iter().enumerate() {
        let answer = alice
            .request(
                json!({ "type": "join", "room": "lobby", "since": since }),
                json!(n),
            )
            .await;
        assert_eq!(answer["type"], "error", "{case}: {answer}");
        assert_eq!(answer["code"], "bad_request", "{case}: {answer}");
    }
    let chat = alice
        .request(
            json!({ "type": "chat", "room": "lobby", "content": "hi" }),
            json!("chat"),
        )
        .await;
    assert_eq!(
        chat["code"], "not_member",
        "alice must not be in lobby: {chat}"
    );
    alice.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
}

// ---------------------------------------------------------------------------------------
// Replay limit
// ---------------------------------------------------------------------------------------

fn replay_limit(limit: u32) -> Settings {
    Settings {
        replay_limit: Some(limit),
        ..Settings::default()
    }
}

#[tokio::test]
async fn past_the_replay_limit_the_newest_are_replayed_and_recovered_is_false() {
    let server = TestServer::with(replay_limit(5)).await;
    let (mut alice, mut bob, last) = lobby_with_history(&server).await;
    leave(&mut alice, "lobby").await;
    say_missed(&mut bob, 8).await;

    let (replayed, answer) = join_since(&mut alice, "lobby", json!(last)).await;
    assert_eq!(
        replayed,
        strings("missed", 3..8),
        "the newest 5, oldest first"
    );
    assert_eq!(
        answer["data"],
        json!({ "room": "lobby", "recovered": false, "replayed": 5 })
    );
    say(&mut bob, "lobby", "live").await;
    assert_eq!(chats(&mut alice, 1).await, ["live"]);
}

#[tokio::test]
async fn exactly_the_replay_limit_missed_is_still_recovered() {
    let server = TestServer::with(replay_limit(5)).await;
    let (mut alice, mut bob, last) = lobby_with_history(&server).await;
    leave(&mut alice, "lobby").await;
    say_missed(&mut bob, 5).await;

    let (replayed, answer) = join_since(&mut alice, "lobby", json!(last)).await;
    assert_eq!(replayed, strings("missed", 0..5));
    assert_eq!(
        answer["data"],
        json!({ "room": "lobby", "recovered": true, "replayed": 5 })
    );
}

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
        send_queue: Some(8192),
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

// ---------------------------------------------------------------------------------------
// Filtered topics
// ---------------------------------------------------------------------------------------

/// Sends `subscribe`; returns the answer.
async fn subscribe(client: &mut Client, topic: Value, keys: Value) -> Value {
    client
        .request(
            json!({ "type": "subscribe", "topic": topic, "keys": keys }),
            json!("subscribe"),
        )
        .await
}

/// Subscribes `client` to `topic` with `keys`; the reply must come.
async fn subscribed(client: &mut Client, topic: &str, keys: Value) -> Value {
    let answer = subscribe(client, json!(topic), keys).await;
    assert_eq!(answer["type"], "reply", "{answer}");
    answer["data"].clone()
}

/// Sends `unsubscribe`; returns the reply's `data`.
async fn unsubscribed(client: &mut Client, topic: &str) -> Value {
    let answer = client
        .request(
            json!({ "type": "unsubscribe", "topic": topic }),
            json!("unsubscribe"),
        )
        .await;
    assert_eq!(answer["type"], "reply", "{answer}");
    answer["data"].clone()
}

/// Stock items, one per `(key, price)`.
fn stocks(items: &[(&str, u32)]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|(key, price)| json!({ "key": key, "price": price }))
            .collect(),
    )
}

/// Publishes `stock_update` items to `stocks`; must be accepted. Returns the response.
async fn publish(server: &TestServer, items: Value) -> Value {
    let (status, body) = server
        .post(
            "/api/publish",
            json!({ "topic": "stocks", "type": "stock_update", "items": items }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The next message, which must be a `stock_update` on `stocks`; returns its `data`.
async fn expect_update(client: &mut Client) -> Value {
    let message = next(client).await;
    assert_eq!(message["type"], "stock_update", "{message}");
    assert_eq!(message["topic"], "stocks", "{message}");
    assert!(message["timestamp"].as_u64().is_some(), "{message}");
    message["data"].clone()
}

#[tokio::test]
async fn a_subscriber_gets_one_message_with_only_its_items_in_published_order() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let data = subscribed(&mut alice, "stocks", json!(["MSFT", "AAPL", "MSFT"])).await;
    assert_eq!(
        data,
        json!({ "topic": "stocks", "keys": ["AAPL", "MSFT"] }),
        "keys sorted, deduplicated"
    );

    let body = publish(
        &server,
        stocks(&[("AAPL", 1), ("GOOG", 2), ("MSFT", 3), ("AAPL", 4)]),
    )
    .await;
    assert_eq!(body, json!({ "users": 1, "delivered": 1 }));
    assert_eq!(
        expect_update(&mut alice).await,
        stocks(&[("AAPL", 1), ("MSFT", 3), ("AAPL", 4)])
    );
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn users_without_a_matching_key_or_subscription_get_nothing() {
    let server = TestServer::start().await;
    let mut other_keys = server.login("alice").await;
    subscribed(&mut other_keys, "stocks", json!(["TSLA"])).await;
    let mut other_topic = server.login("bob").await;
    subscribed(&mut other_topic, "crypto", json!(["AAPL"])).await;
    let mut unsubscribed_user = server.login("carol").await;

    let body = publish(&server, stocks(&[("AAPL", 1), ("GOOG", 2)])).await;
    assert_eq!(body, json!({ "users": 0, "delivered": 0 }));
    other_keys.expect_silence(QUIET).await;
    other_topic.expect_silence(QUIET).await;
    unsubscribed_user.expect_silence(QUIET).await;
}

#[tokio::test]
async fn every_connection_of_the_user_gets_it_including_the_one_that_did_not_subscribe() {
    let server = TestServer::start().await;
    let mut first = server.login("alice").await;
    let mut second = server.login("alice").await;
    subscribed(&mut first, "stocks", json!(["AAPL"])).await;

    let body = publish(&server, stocks(&[("AAPL", 1)])).await;
    assert_eq!(body, json!({ "users": 1, "delivered": 2 }));
    assert_eq!(expect_update(&mut first).await, stocks(&[("AAPL", 1)]));
    assert_eq!(expect_update(&mut second).await, stocks(&[("AAPL", 1)]));
    first.expect_silence(QUIET).await;
    second.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_connection_opened_after_subscribing_elsewhere_gets_it_too() {
    let server = TestServer::start().await;
    let mut first = server.login("alice").await;
    subscribed(&mut first, "stocks", json!(["AAPL"])).await;
    let mut later = server.login("alice").await;

    publish(&server, stocks(&[("AAPL", 1)])).await;
    assert_eq!(expect_update(&mut later).await, stocks(&[("AAPL", 1)]));
    assert_eq!(expect_update(&mut first).await, stocks(&[("AAPL", 1)]));
}

#[tokio::test]
async fn publish_counts_matched_users_and_their_connections() {
    let server = TestServer::start().await;
    let mut alice_1 = server.login("alice").await;
    let mut alice_2 = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    subscribed(&mut alice_1, "stocks", json!(["AAPL"])).await;
    subscribed(&mut bob, "stocks", json!(["GOOG", "MSFT"])).await;
    subscribed(&mut carol, "stocks", json!(["TSLA"])).await;

    let body = publish(&server, stocks(&[("AAPL", 1), ("MSFT", 2)])).await;
    assert_eq!(body, json!({ "users": 2, "delivered": 3 }));
    assert_eq!(expect_update(&mut alice_1).await, stocks(&[("AAPL", 1)]));
    assert_eq!(expect_update(&mut alice_2).await, stocks(&[("AAPL", 1)]));
    assert_eq!(expect_update(&mut bob).await, stocks(&[("MSFT", 2)]));
    carol.expect_silence(QUIET).await;
}

#[tokio::test]
async fn subscriptions_survive_a_reconnect() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL"])).await;
    alice.close().await;
    wait_until_gone(&server, "alice").await;

    let mut alice = server.login("alice").await;
    let body = publish(&server, stocks(&[("AAPL", 7), ("GOOG", 8)])).await;
    assert_eq!(body, json!({ "users": 1, "delivered": 1 }));
    assert_eq!(expect_update(&mut alice).await, stocks(&[("AAPL", 7)]));
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn subscriptions_survive_a_restart_with_a_sqlite_store() {
    let path = store_file("subscriptions-restart");
    let settings = || Settings {
        store: Some(format!("sqlite://{}", path.display())),
        ..Settings::default()
    };
    let server = TestServer::with(settings()).await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL", "MSFT"])).await;
    alice.close().await;
    server.stop().await;

    let server = TestServer::with(settings()).await;
    let mut alice = server.login("alice").await;
    let body = publish(&server, stocks(&[("GOOG", 1), ("MSFT", 2)])).await;
    assert_eq!(body, json!({ "users": 1, "delivered": 1 }));
    assert_eq!(expect_update(&mut alice).await, stocks(&[("MSFT", 2)]));
    alice.expect_silence(QUIET).await;
    server.stop().await;
    remove_store(&path);
}

#[tokio::test]
async fn a_publish_right_after_auth_ok_reaches_the_stored_subscriptions() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL"])).await;
    alice.close().await;
    for round in 0..20 {
        wait_until_gone(&server, "alice").await;
        let mut alice = server.login("alice").await;
        let body = publish(&server, stocks(&[("AAPL", round)])).await;
        assert_eq!(
            body,
            json!({ "users": 1, "delivered": 1 }),
            "round {round}: alice had her auth_ok"
        );
        assert_eq!(expect_update(&mut alice).await, stocks(&[("AAPL", round)]));
        alice.close().await;
    }
}

#[tokio::test]
async fn subscribing_again_replaces_the_keys() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL"])).await;
    let data = subscribed(&mut alice, "stocks", json!(["GOOG"])).await;
    assert_eq!(data, json!({ "topic": "stocks", "keys": ["GOOG"] }));

    publish(&server, stocks(&[("AAPL", 1), ("GOOG", 2)])).await;
    assert_eq!(expect_update(&mut alice).await, stocks(&[("GOOG", 2)]));
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery_of_that_topic_only() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL"])).await;
    subscribed(&mut alice, "crypto", json!(["BTC"])).await;

    assert_eq!(
        unsubscribed(&mut alice, "stocks").await,
        json!({ "topic": "stocks", "removed": true })
    );
    let body = publish(&server, stocks(&[("AAPL", 1)])).await;
    assert_eq!(body, json!({ "users": 0, "delivered": 0 }));
    alice.expect_silence(QUIET).await;
    assert_eq!(
        unsubscribed(&mut alice, "stocks").await,
        json!({ "topic": "stocks", "removed": false })
    );

    let (status, body) = server
        .post(
            "/api/publish",
            json!({ "topic": "crypto", "type": "price", "items": [{ "key": "BTC", "usd": 1 }] }),
        )
        .await;
    assert_eq!((status, body), (200, json!({ "users": 1, "delivered": 1 })));
    let message = next(&mut alice).await;
    assert_eq!(message["type"], "price", "{message}");
    assert_eq!(message["data"], json!([{ "key": "BTC", "usd": 1 }]));
}

#[tokio::test]
async fn bad_publish_bodies_get_400_and_deliver_nothing() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL"])).await;
    let aapl = json!([{ "key": "AAPL" }]);
    let cases = [
        (
            "item without key",
            json!({ "topic": "stocks", "type": "t", "items": [{ "key": "AAPL" }, { "price": 1 }] }),
        ),
        (
            "numeric key",
            json!({ "topic": "stocks", "type": "t", "items": [{ "key": "AAPL" }, { "key": 5 }] }),
        ),
        (
            "null key",
            json!({ "topic": "stocks", "type": "t", "items": [{ "key": null }] }),
        ),
        (
            "item not an object",
            json!({ "topic": "stocks", "type": "t", "items": ["AAPL"] }),
        ),
        (
            "item an array holding a key",
            json!({ "topic": "stocks", "type": "t", "items": [["AAPL"]] }),
        ),
        (
            "items not an array",
            json!({ "topic": "stocks", "type": "t", "items": { "key": "AAPL" } }),
        ),
        (
            "empty topic",
            json!({ "topic": "", "type": "t", "items": aapl }),
        ),
        ("missing topic", json!({ "type": "t", "items": aapl })),
        ("missing type", json!({ "topic": "stocks", "items": aapl })),
        (
            "empty type",
            json!({ "topic": "stocks", "type": "", "items": aapl }),
        ),
        ("missing items", json!({ "topic": "stocks", "type": "t" })),
    ];
    for (case, body) in cases {
        let (status, answer) = server.post("/api/publish", body).await;
        assert_eq!(status, 400, "{case}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request", "{case}: {answer}");
    }
    let (status, _) = response(
        server
            .http(Method::POST, "/api/publish")
            .json(&json!({ "topic": "stocks", "type": "t", "items": aapl }))
            .send()
            .await,
    )
    .await;
    assert_eq!(status, 401, "publishing needs the API key");
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn bad_subscriptions_are_bad_request_and_keep_the_old_keys() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    subscribed(&mut alice, "stocks", json!(["AAPL"])).await;
    let cases = [
        ("empty keys", json!("stocks"), json!([])),
        ("numeric key", json!("stocks"), json!(["GOOG", 1])),
        ("null key", json!("stocks"), json!([null])),
        ("empty key", json!("stocks"), json!(["GOOG", ""])),
        ("keys not an array", json!("stocks"), json!("GOOG")),
        ("missing keys", json!("stocks"), Value::Null),
        ("empty topic", json!(""), json!(["GOOG"])),
        ("numeric topic", json!(5), json!(["GOOG"])),
    ];
    for (case, topic, keys) in cases {
        let missing = keys.is_null();
        let mut message = json!({ "type": "subscribe", "topic": topic, "keys": keys });
        if missing {
            message.as_object_mut().expect("object").remove("keys");
        }
        let answer = alice.request(message, json!(case)).await;
        assert_eq!(answer["type"], "error", "{case}: {answer}");
        assert_eq!(answer["code"], "bad_request", "{case}: {answer}");
    }
    let answer = alice
        .request(
            json!({ "type": "unsubscribe", "topic": "" }),
            json!("unsubscribe"),
        )
        .await;
    assert_eq!(answer["code"], "bad_request", "{answer}");

    publish(&server, stocks(&[("AAPL", 1), ("GOOG", 2)])).await;
    assert_eq!(expect_update(&mut alice).await, stocks(&[("AAPL", 1)]));
    alice.expect_silence(QUIET).await;
}
