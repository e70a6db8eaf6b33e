//! A `join` with `since` on a node that is behind the store (CONTRACT §4, §10): the
//! client saw a chat on another node, then joins here before this node heard that chat
//! (its bus was away). The joiner must get nothing it already has, and this node's other
//! members must still get that chat, once.

use std::time::Duration;

use roomcast_server::Settings;
use roomcast_tests::Client;
use roomcast_tests::cluster::Cluster;
use roomcast_tests::proxy::Proxy;
use serde_json::json;

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

/// The contents of the chats that arrive on `client` until it has been quiet for
/// `quiet`, skipping presence notices.
async fn chats(client: &mut Client, quiet: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(message) = client.try_recv(quiet).await {
        match message["type"].as_str() {
            Some("chat") => seen.push(message["message"].as_str().unwrap_or_default().to_owned()),
            Some("user_join" | "user_leave" | "ping") => {}
            _ => panic!("unexpected {message}"),
        }
    }
    seen
}

#[tokio::test]
async fn a_join_with_since_on_a_node_behind_the_store_repeats_nothing() {
    // Node 1 reaches Redis through a proxy the test cuts, so it does not hear node 0's
    // chats until its position check reads them from the store.
    let mut via = Proxy::start("127.0.0.1:6379").await;
    // Beats of 2 s: a node's position check (every two beats) then leaves it behind the
    // store for up to 4 s, long enough for X to come back within it.
    let slow = Settings {
        node_heartbeat_ms: Some(2_000),
        node_ttl_ms: Some(6_000),
        ..Settings::default()
    };
    let Some(cluster) = Cluster::one_behind(&via, slow).await else {
        return;
    };
    for round in 0..3 {
        let room = format!("hall-{round}");
        let mut x = cluster[0].login("x").await;
        x.join(&room).await;
        let mut y = cluster[1].login("y").await;
        y.join(&room).await;
        let first = say(&mut x, &room, "before").await;
        assert_eq!(chats(&mut y, Duration::from_millis(500)).await, ["before"]);

        via.cut();
        cluster[1].health_becomes("degraded").await;
        // X sees its own chat on node 0 (delivered there, stored); node 1 cannot hear it.
        let seen = say(&mut x, &room, "seen on node 0").await;
        assert!(seen > first);
        x.close().await;
        // X comes back on node 1 with what it saw, before node 1 caught up.
        let mut again = cluster[1].login("x").await;
        again
            .send(json!({ "type": "join", "room": room, "since": seen, "id": "rejoin" }))
            .await;
        let mut replayed = Vec::new();
        loop {
            let message = again.recv().await;
            if message["id"] == "rejoin" && message["type"] != "chat" {
                assert_eq!(message["type"], "reply", "{message}");
                break;
            }
            if message["type"] == "chat" {
                replayed.push(message["message"].clone());
            }
        }
        assert!(replayed.is_empty(), "round {round}: replayed {replayed:?}");
        via.restore().await;
        cluster[1].health_becomes("ok").await;
        // Node 1 catches up (its check after resubscribing): the chat once for Y,
        // nothing for X, who has it.
        let caught_up = y.wait_for("chat").await;
        assert_eq!(caught_up["message"], "seen on node 0", "round {round}");
        assert_eq!(
            chats(&mut y, Duration::from_millis(500)).await,
            Vec::<String>::new(),
            "round {round}: Y gets it once"
        );
        assert_eq!(
            chats(&mut again, Duration::from_millis(300)).await,
            Vec::<String>::new(),
            "round {round}: X already has it"
        );
        again.close().await;
        y.close().await;
    }
    cluster.stop().await;
}
