//! The send queue bounded in bytes (CONTRACT §8 close 4029; docs/protocol.md, limits,
//! `ROOMCAST_SEND_QUEUE_BYTES`): a member that stops reading while a room is flooded is
//! closed with 4029 once more than the bound waits for it, counted in `/metrics` and
//! `/api/stats`, while a reading member gets every chat in order; a member only a little
//! behind on many small frames is not closed; a frame larger than the bound still goes to
//! a connection with nothing else waiting.
//!
//! A client that stops reading backs up into the server's queue only once the kernel's
//! socket buffers are full (megabytes on loopback), so these tests send until the server
//! shows what they wait for (a slow-consumer close, or frames waiting for a connection:
//! sent minus its `messagesOut`), never for a set time or amount.

use std::time::Duration;

use roomcast_server::Settings;
use roomcast_tests::{Client, Closed, TestServer};
use serde_json::{Value, json};

const ROOM: &str = "flood";
/// Chats or frames sent before the test gives up on seeing what it waits for: far more
/// than the socket buffers of one connection take.
const GIVE_UP: usize = 20_000;

/// A server with `send_queue_bytes` and no rate limit in the flood's way.
async fn server(send_queue_bytes: Option<usize>) -> TestServer {
    TestServer::with(Settings {
        send_queue_bytes,
        rate_limit_per_sec: Some(1_000_000),
        rate_limit_burst: Some(1_000_000),
        ..Settings::default()
    })
    .await
}

/// A counter of `/metrics`, 0 when not rendered yet.
async fn counter(server: &TestServer, series: &str) -> f64 {
    server.metric(series).await.unwrap_or(0.0)
}

/// Frames written to the connection `id` so far (`messagesOut` of `/api/connections`).
async fn written_to(server: &TestServer, id: &str) -> u64 {
    let (status, body) = server.get(&format!("/api/connections/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body["messagesOut"].as_u64().expect("messagesOut")
}

/// Sends chat `n` (about 4 KB) and returns its id from the reply.
async fn chat(client: &mut Client, n: usize) -> String {
    let content = format!("{n}:{}", "x".repeat(4000));
    let reply = client
        .request(
            json!({ "type": "chat", "room": ROOM, "content": content }),
            json!(n),
        )
        .await;
    assert_eq!(reply["type"], "reply", "{reply}");
    reply["data"]["id"]
        .as_str()
        .expect("the chat's id")
        .to_owned()
}

/// Reads chats until the one whose content is `last`; returns their ids in order.
async fn chat_ids_until(client: &mut Client, last: &str) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let message = client.recv().await;
        if message["type"] != "chat" {
            continue;
        }
        ids.push(message["id"].as_str().expect("id").to_owned());
        if message["message"] == last {
            return ids;
        }
    }
}

#[tokio::test]
async fn a_member_that_stops_reading_is_closed_with_4029_and_the_others_get_every_chat() {
    let server = server(Some(64 * 1024)).await;
    let mut stalled = server.login("stalled").await;
    stalled.join(ROOM).await;
    let mut reader = server.login("reader").await;
    reader.join(ROOM).await;
    let mut flooder = server.login("flooder").await;
    flooder.join(ROOM).await;
    let closes = "roomcast_slow_consumer_closes_total";
    assert_eq!(counter(&server, closes).await, 0.0);

    // The flooder chats (reading its own copies as it goes) until the server has closed a
    // slow consumer, then says "end".
    let flood = async {
        let mut ids = Vec::new();
        while ids.len() < GIVE_UP {
            ids.push(chat(&mut flooder, ids.len()).await);
            if ids.len() % 16 == 0 && counter(&server, closes).await > 0.0 {
                break;
            }
        }
        assert!(
            ids.len() < GIVE_UP,
            "no slow consumer after {GIVE_UP} chats"
        );
        let reply = flooder
            .request(
                json!({ "type": "chat", "room": ROOM, "content": "end" }),
                json!("end"),
            )
            .await;
        ids.push(reply["data"]["id"].as_str().expect("id").to_owned());
        ids
    };
    let read = chat_ids_until(&mut reader, "end");
    // The stalled member reads again once it has been found slow: its close frame comes
    // after what its socket buffers hold (the server gives a client that does not read its
    // close only a short grace, so it must not wait for the whole flood).
    let stalled_side = async {
        while counter(&server, closes).await == 0.0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stalled.closed().await
    };
    let (sent, got, (seen, closed)) = tokio::join!(flood, read, stalled_side);

    assert_eq!(closed, Closed::Code(4029), "after {} messages", seen.len());
    let seen_chats = seen.iter().filter(|m| m["type"] == "chat").count();
    assert!(
        seen_chats < sent.len(),
        "closed before it got everything: {seen_chats} of {}",
        sent.len()
    );
    assert_eq!(got, sent, "the reading member got every chat, in order");
    assert_eq!(counter(&server, closes).await, 1.0, "one slow consumer");
    assert_eq!(
        counter(&server, r#"roomcast_closes_total{code="4029"}"#).await,
        1.0
    );
    let drops = counter(&server, "roomcast_queue_drops_total").await;
    assert!(drops >= 1.0, "the chat that did not fit is a drop: {drops}");
    let (_, stats) = server.get("/api/stats").await;
    assert_eq!(stats["slowConsumerCloses"], 1, "{stats}");
    assert!(stats["queueDrops"].as_u64().unwrap_or(0) >= 1, "{stats}");
    // The flooder and the reader are still served.
    reader.send(json!({ "type": "ping", "id": "still" })).await;
    assert_eq!(reader.wait_for("pong").await["id"], "still");
}

/// Broadcasts `message` to the connection `id`.
async fn broadcast_to(server: &TestServer, id: &str, message: Value) {
    let (status, body) = server
        .post(
            "/api/broadcast",
            json!({ "to": { "client": id }, "message": message }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["recipients"], 1, "{body}");
}

#[tokio::test]
async fn a_member_a_little_behind_on_many_small_frames_is_not_closed() {
    let server = server(None).await;
    let mut behind = server.login("behind").await;
    let id = behind.client_id.clone();
    let before = written_to(&server, &id).await;
    // Frames sent and not written yet (queued, or being written).
    let waiting = async |sent: usize| before + sent as u64 - written_to(&server, &id).await;
    // Large frames until the socket buffers are full and frames wait in the queue...
    let big = "x".repeat(60_000);
    let mut sent = 0;
    while waiting(sent).await < 2 {
        assert!(sent < GIVE_UP, "the socket buffers never filled");
        broadcast_to(
            &server,
            &id,
            json!({ "type": "big", "n": sent, "pad": big }),
        )
        .await;
        sent += 1;
    }
    // ... then more small frames than the old limit of 1024 messages: a small part of the
    // bound in bytes.
    let small_from = sent;
    while waiting(sent).await < 1_100 {
        assert!(sent < small_from + GIVE_UP, "small frames did not queue up");
        for _ in 0..50 {
            broadcast_to(&server, &id, json!({ "type": "small", "n": sent })).await;
            sent += 1;
        }
    }
    let closes = "roomcast_slow_consumer_closes_total";
    assert_eq!(counter(&server, closes).await, 0.0);
    // It reads again and gets everything, in order.
    for n in 0..sent {
        let message = behind.recv().await;
        assert_eq!(message["n"], n, "{}", message["type"]);
    }
    behind.send(json!({ "type": "ping", "id": "here" })).await;
    assert_eq!(behind.wait_for("pong").await["id"], "here");
    assert_eq!(counter(&server, closes).await, 0.0);
    assert_eq!(counter(&server, "roomcast_queue_drops_total").await, 0.0);
}

#[tokio::test]
async fn a_frame_larger_than_the_bound_still_goes_to_a_connection_with_nothing_waiting() {
    let server = server(Some(1024)).await;
    let mut alone = server.login("alone").await;
    let id = alone.client_id.clone();
    let pad = "x".repeat(60_000);
    for n in 0..3 {
        broadcast_to(&server, &id, json!({ "type": "big", "n": n, "pad": pad })).await;
        let message = alone.recv().await;
        assert_eq!(
            (&message["type"], &message["n"]),
            (&json!("big"), &json!(n))
        );
        assert_eq!(message["pad"].as_str().map(str::len), Some(60_000));
    }
    let closes = "roomcast_slow_consumer_closes_total";
    assert_eq!(counter(&server, closes).await, 0.0);
}
