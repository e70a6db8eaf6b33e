//! Chat history (CONTRACT §4 `history`, §9 `GET /api/rooms/{name}/history`): every chat is
//! stored before anyone receives it, and the history survives a restart of the server.

use roomcast_server::Settings;
use roomcast_tests::{Client, TestServer};
use serde_json::{Value, json};

/// Sends `n` chats `m0..m{n-1}` and returns their ids, in order.
async fn say_many(client: &mut Client, room: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        client
            .send(json!({ "type": "chat", "room": room, "content": format!("m{i}"), "id": i }))
            .await;
        let chat = client.expect("chat").await;
        let reply = client.expect("reply").await;
        assert_eq!(
            reply["data"]["id"], chat["id"],
            "the reply comes after the stored, delivered chat"
        );
        ids.push(chat["id"].as_str().expect("id").to_owned());
    }
    ids
}

fn contents(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn history_returns_the_newest_messages_oldest_first() {
    let server = TestServer::start().await;
    let mut alice = server
        .login_with(json!({ "sub": "alice", "name": "Alice" }))
        .await;
    alice.join("lobby").await;
    let ids = say_many(&mut alice, "lobby", 5).await;

    let all = alice
        .request(json!({ "type": "history", "room": "lobby" }), json!("h1"))
        .await;
    assert_eq!(all["type"], "reply", "{all}");
    assert_eq!(
        contents(&all["data"]["items"]),
        ["m0", "m1", "m2", "m3", "m4"]
    );
    let first = &all["data"]["items"][0];
    assert_eq!(first["type"], "chat");
    assert_eq!(first["id"], ids[0].as_str());
    assert_eq!(first["room"], "lobby");
    assert_eq!(first["from"], json!({ "userId": "alice", "name": "Alice" }));

    let newest = alice
        .request(
            json!({ "type": "history", "room": "lobby", "limit": 2 }),
            json!("h2"),
        )
        .await;
    assert_eq!(contents(&newest["data"]["items"]), ["m3", "m4"]);
    let older = alice
        .request(
            json!({ "type": "history", "room": "lobby", "limit": 2, "before": ids[3] }),
            json!("h3"),
        )
        .await;
    assert_eq!(contents(&older["data"]["items"]), ["m1", "m2"]);
    let other = alice
        .request(json!({ "type": "join", "room": "empty" }), json!("j"))
        .await;
    assert_eq!(other["type"], "reply");
    let none = alice
        .request(json!({ "type": "history", "room": "empty" }), json!("h4"))
        .await;
    assert_eq!(none["data"]["items"], json!([]));
}

#[tokio::test]
async fn history_needs_membership_and_valid_fields() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.join("lobby").await;
    say_many(&mut alice, "lobby", 1).await;
    let mut bob = server.login("bob").await;
    let denied = bob
        .request(json!({ "type": "history", "room": "lobby" }), json!(1))
        .await;
    assert_eq!(denied["code"], "not_member", "{denied}");
    let bad = alice
        .request(
            json!({ "type": "history", "room": "lobby", "limit": -1 }),
            json!(2),
        )
        .await;
    assert_eq!(bad["code"], "bad_request", "{bad}");
    let bad = alice
        .request(
            json!({ "type": "history", "room": "lobby", "before": "not/an/id" }),
            json!(3),
        )
        .await;
    assert_eq!(bad["code"], "bad_request", "{bad}");
}

#[tokio::test]
async fn the_api_serves_history_with_limit_and_before() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.join("news").await;
    let ids = say_many(&mut alice, "news", 3).await;
    let (status, body) = server.get("/api/rooms/news/history").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(contents(&body["items"]), ["m0", "m1", "m2"]);
    let (_, body) = server
        .get(&format!(
            "/api/rooms/news/history?limit=1&before={}",
            ids[2]
        ))
        .await;
    assert_eq!(contents(&body["items"]), ["m1"]);
    for bad in ["limit=abc", "limit=0", "before=a%2Fb", "colour=red"] {
        let (status, body) = server.get(&format!("/api/rooms/news/history?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{bad}: {body}");
    }
}

#[tokio::test]
async fn history_survives_a_restart() {
    let path = std::env::temp_dir().join(format!(
        "roomcast-history-{}-{}.db",
        std::process::id(),
        roomcast_server::now_ms()
    ));
    let settings = || Settings {
        store: Some(format!("sqlite://{}", path.display())),
        ..Settings::default()
    };
    let server = TestServer::with(settings()).await;
    let mut alice = server.login("alice").await;
    alice.join("lobby").await;
    say_many(&mut alice, "lobby", 3).await;
    alice.close().await;
    server.stop().await;

    let server = TestServer::with(settings()).await;
    let (status, body) = server.get("/api/rooms/lobby/history").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(contents(&body["items"]), ["m0", "m1", "m2"]);
    server.stop().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
