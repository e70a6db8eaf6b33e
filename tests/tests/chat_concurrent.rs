//! Many senders in one room at once (group commit, no per-room lock): every member gets
//! every chat once, in id order with no gap; each sender's `reply` comes after its own
//! `chat` (a message's effects come before its reply); the history holds exactly the
//! acknowledged chats.

use std::collections::HashMap;

use roomcast_tests::{Client, TestServer};
use serde_json::{Value, json};

const SENDERS: usize = 8;
const EACH: usize = 60;

fn seq(id: &Value) -> u64 {
    u64::from_str_radix(id.as_str().expect("an id"), 16).expect("a hex id")
}

/// Sends `EACH` chats without waiting, then reads until every reply is in. Checks that
/// each reply follows the sender's own chat with that id; returns the ids acknowledged.
async fn flood(mut client: Client, who: usize) -> (Vec<u64>, Vec<u64>) {
    for n in 0..EACH {
        client
            .send(json!({
                "type": "chat", "room": "busy", "id": format!("{who}-{n}"),
                "content": { "who": who, "n": n },
            }))
            .await;
    }
    let mut seen: Vec<u64> = Vec::new();
    let mut acked = Vec::new();
    while acked.len() < EACH {
        let message = client.recv().await;
        match message["type"].as_str() {
            Some("chat") => seen.push(seq(&message["id"])),
            Some("reply") => {
                assert_eq!(message["ok"], true, "{message}");
                let id = seq(&message["data"]["id"]);
                assert!(
                    seen.contains(&id),
                    "sender {who}: the reply for {id} came before its chat"
                );
                acked.push(id);
            }
            _ => {}
        }
    }
    (acked, seen)
}

#[tokio::test]
async fn concurrent_senders_in_one_room_are_delivered_once_in_order_and_replied_after() {
    let server = TestServer::with(roomcast_server::Settings {
        rate_limit_burst: Some(1000),
        ..roomcast_server::Settings::default()
    })
    .await;
    let mut reader = server.login("reader").await;
    reader.join("busy").await;
    let mut senders = Vec::new();
    for who in 0..SENDERS {
        let mut client = server.login(&format!("sender{who}")).await;
        client.join("busy").await;
        senders.push(client);
    }
    let floods = senders
        .into_iter()
        .enumerate()
        .map(|(who, client)| tokio::spawn(flood(client, who)));
    let mut acked = Vec::new();
    for flood in floods {
        acked.extend(flood.await.expect("a sender").0);
    }
    acked.sort_unstable();
    let total = SENDERS * EACH;
    assert_eq!(acked, (1..=total as u64).collect::<Vec<_>>(), "dense ids");

    // The reader: each chat once, in id order, every sender's in its sending order.
    let mut got = Vec::new();
    let mut last_n: HashMap<u64, u64> = HashMap::new();
    while got.len() < total {
        let message = reader.recv().await;
        if message["type"] != "chat" {
            continue;
        }
        let who = message["message"]["who"].as_u64().expect("who");
        let n = message["message"]["n"].as_u64().expect("n");
        if let Some(before) = last_n.insert(who, n) {
            assert!(n > before, "sender {who}: {n} after {before}");
        }
        got.push(seq(&message["id"]));
    }
    assert_eq!(got, (1..=total as u64).collect::<Vec<_>>(), "in id order");

    // The history holds exactly the acknowledged chats.
    let answer = reader
        .request(
            json!({ "type": "history", "room": "busy", "limit": 500 }),
            json!("h"),
        )
        .await;
    let items = answer["data"]["items"].as_array().expect("items").clone();
    let stored: Vec<u64> = items.iter().map(|m| seq(&m["id"])).collect();
    assert_eq!(stored, (1..=total as u64).collect::<Vec<_>>());
}

#[tokio::test]
async fn on_two_nodes_each_reply_still_follows_its_chat_and_both_nodes_see_one_order() {
    let settings = roomcast_server::Settings {
        rate_limit_burst: Some(1000),
        ..roomcast_server::Settings::default()
    };
    let Some(cluster) = roomcast_tests::cluster::Cluster::with(2, settings).await else {
        return;
    };
    let mut readers = Vec::new();
    for node in 0..2 {
        let mut reader = cluster[node].login(&format!("reader{node}")).await;
        reader.join("busy").await;
        readers.push(reader);
    }
    let mut senders = Vec::new();
    for who in 0..SENDERS {
        let mut client = cluster[who % 2].login(&format!("sender{who}")).await;
        client.join("busy").await;
        senders.push(client);
    }
    cluster.settled().await;
    let floods = senders
        .into_iter()
        .enumerate()
        .map(|(who, client)| tokio::spawn(flood(client, who)));
    for flood in floods {
        flood.await.expect("a sender");
    }
    let total = (SENDERS * EACH) as u64;
    for (node, reader) in readers.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < total as usize {
            let message = reader.recv().await;
            if message["type"] == "chat" {
                got.push(seq(&message["id"]));
            }
        }
        assert_eq!(got, (1..=total).collect::<Vec<_>>(), "node {node}");
    }
    cluster.stop().await;
}
