//! Latest value per key (CONTRACT §5 filtered topics; docs/protocol.md, topic messages):
//! a topic frame still waiting in a subscriber's queue when a newer publish to the topic
//! comes is merged with it, newest item per key. A subscriber that stops reading while
//! the application publishes many updates of a few keys gets, once it reads again, what
//! its socket buffers held and then the latest value of every key: far fewer frames than
//! were published, never an older value after a newer one. A subscriber that keeps up
//! gets every update.
//!
//! Frames back up into the server's queue only once the socket buffers are full, so the
//! publisher goes on until `/metrics` has counted merges, never for a set time.

use std::collections::HashMap;

use roomcast_tests::{Client, TestServer};
use serde_json::{Value, json};

const TOPIC: &str = "ticker";
/// Publishes before the test gives up on seeing merges.
const GIVE_UP: u64 = 20_000;
const SUPERSEDED: &str = "roomcast_topic_items_superseded_total";

async fn subscribe(client: &mut Client, keys: &[&str]) {
    let answer = client
        .request(
            json!({ "type": "subscribe", "topic": TOPIC, "keys": keys }),
            json!("subscribe"),
        )
        .await;
    assert_eq!(answer["type"], "reply", "{answer}");
}

/// Publishes update `v` of keys A (small), B and C (8 KB each: the frames of a subscriber
/// to all three fill socket buffers fast); the last one says `last`.
async fn publish(server: &TestServer, v: u64, last: bool) {
    let pad = "p".repeat(8_000);
    let items = json!([
        { "key": "A", "v": v, "last": last },
        { "key": "B", "v": v, "last": last, "pad": pad },
        { "key": "C", "v": v, "last": last, "pad": pad },
    ]);
    let (status, body) = server
        .post(
            "/api/publish",
            json!({ "topic": TOPIC, "type": "tick", "items": items }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["delivered"], 2, "{body}");
}

async fn superseded(server: &TestServer) -> u64 {
    server.metric(SUPERSEDED).await.unwrap_or(0.0) as u64
}

/// Reads `tick` frames until the one marked `last`; returns them.
async fn ticks_until_last(client: &mut Client) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = client.expect("tick").await;
        let last = frame["data"][0]["last"] == true;
        frames.push(frame);
        if last {
            return frames;
        }
    }
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_gets_the_latest_value_of_each_key() {
    let server = TestServer::start().await;
    let mut behind = server.login("behind").await;
    subscribe(&mut behind, &["A", "B", "C"]).await;
    let mut keeping_up = server.login("keeping-up").await;
    subscribe(&mut keeping_up, &["A"]).await;

    // `behind` does not read meanwhile. Publish until merges have absorbed three times as
    // many updates as went out before the first merge (what the socket buffers took).
    let publisher = async {
        let mut published = 0;
        let mut before_merging = None;
        loop {
            assert!(published < GIVE_UP, "no merge after {GIVE_UP} publishes");
            publish(&server, published, false).await;
            published += 1;
            if published % 16 != 0 {
                continue;
            }
            let merged = superseded(&server).await / 3;
            match before_merging {
                None if merged > 0 => before_merging = Some(published),
                Some(p0) if merged >= 3 * p0 => break,
                _ => {}
            }
        }
        publish(&server, published, true).await;
        published + 1
    };
    let (published, kept_up) = tokio::join!(publisher, ticks_until_last(&mut keeping_up));

    // The subscriber that keeps up got every update, each in its own frame.
    let values: Vec<u64> = kept_up
        .iter()
        .map(|f| f["data"][0]["v"].as_u64().expect("v"))
        .collect();
    assert_eq!(values, (0..published).collect::<Vec<_>>());

    let frames = ticks_until_last(&mut behind).await;
    let mut newest: HashMap<String, u64> = HashMap::new();
    for frame in &frames {
        for item in frame["data"].as_array().expect("data") {
            let key = item["key"].as_str().expect("key").to_owned();
            let v = item["v"].as_u64().expect("v");
            if let Some(&seen) = newest.get(&key) {
                assert!(v > seen, "{key}: {v} after {seen}");
            }
            newest.insert(key, v);
        }
    }
    let latest = published - 1;
    let expected: HashMap<String, u64> = ["A", "B", "C"]
        .into_iter()
        .map(|k| (k.to_owned(), latest))
        .collect();
    assert_eq!(newest, expected, "the latest value of every key");
    assert!(
        (frames.len() as u64) * 2 < published,
        "{} frames for {published} publishes",
        frames.len()
    );
    // Every publish is a frame or was merged into one, replacing its three waiting items.
    assert_eq!(
        frames.len() as u64 + superseded(&server).await / 3,
        published
    );
}
