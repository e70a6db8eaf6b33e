//! Chat recovery end to end (CONTRACT §4 `join` with `since`): a member that was away,
//! after a `leave` or on a new connection, gets exactly the chats of that room it missed,
//! oldest first, then live ones; a `since` at or beyond the newest chat replays nothing,
//! an invalid one is a bad request; past the replay limit the newest are replayed and
//! `recovered` is false. Under heavy concurrent publishing: `recovery_concurrent.rs`.

mod recovery_common;

use recovery_common::*;
use roomcast_server::Settings;
use roomcast_tests::{Client, TestServer};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Leaves `room`; the reply must come.
async fn leave(client: &mut Client, room: &str) {
    let reply = client
        .request(json!({ "type": "leave", "room": room }), json!("leave"))
        .await;
    assert_eq!(reply["type"], "reply", "{reply}");
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
