//! The cluster's numbers and its one-per-cluster feeds (CONTRACT §10: a client cannot
//! tell which node it is on): `GET /api/stats` answers the same cluster-wide counts on
//! every node (a user on two nodes counted once, a room on two nodes counted once); one
//! node, the leader, pushes each `stats_update` to every admin on every node, and another
//! takes over when it stops; the demo feed ticks once across the cluster, however many
//! nodes have it on, and moves when its node stops.

use std::time::Duration;

use roomcast_server::Settings;
use roomcast_tests::cluster::Cluster;
use roomcast_tests::{Client, TestServer};
use serde_json::{Value, json};

macro_rules! cluster {
    ($n:expr, $settings:expr) => {
        match Cluster::with($n, $settings).await {
            Some(cluster) => cluster,
            None => return,
        }
    };
}

/// How often the leader pushes `stats_update` in these tests.
const STATS_MS: u64 = 300;
/// How often the demo feed ticks (`server/src/demo.rs`).
const DEMO_TICK_MS: u64 = 500;
/// Longest wait for an eventual condition (a leader taking over is one TTL, 1 s, plus a
/// heartbeat).
const EVENTUALLY: Duration = Duration::from_secs(15);

/// The counts a client can check, from `/api/stats` or a `stats_update`.
fn counts(stats: &Value) -> Value {
    json!({
        "connections": stats["connections"],
        "users": stats["users"],
        "rooms": stats["rooms"],
    })
}

/// Polls `/api/stats` on `node` until its counts are `expected`; returns the whole answer.
async fn stats_reach(node: &TestServer, expected: &Value) -> Value {
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    loop {
        let (status, stats) = node.get("/api/stats").await;
        assert_eq!(status, 200, "{stats}");
        if counts(&stats) == *expected {
            return stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/api/stats never showed {expected}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Skips `stats_update`s until one shows `expected`; then the next `n` must all show it
/// and be one per tick: their timestamps at least half an interval apart (a second node
/// pushing, or one frame delivered twice, puts two within one interval).
async fn one_update_per_tick(admin: &mut Client, expected: &Value, n: usize) {
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    let mut first = loop {
        let update = admin.wait_for("stats_update").await;
        if counts(&update) == *expected {
            break update;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no stats_update showed {expected}; the last: {update}"
        );
    };
    for _ in 0..n {
        let next = admin.wait_for("stats_update").await;
        assert_eq!(counts(&next), *expected, "{next}");
        let (before, at) = (
            first["timestamp"].as_u64().expect("timestamp"),
            next["timestamp"].as_u64().expect("timestamp"),
        );
        assert!(
            at >= before + STATS_MS / 2,
            "two stats_update within one tick: {first} then {next}"
        );
        first = next;
    }
}

#[tokio::test]
async fn stats_are_cluster_wide_on_every_node_and_one_node_pushes_them_until_it_stops() {
    let mut cluster = cluster!(
        3,
        Settings {
            stats_interval_ms: Some(STATS_MS),
            ..Settings::default()
        }
    );
    // Admins on nodes 1 and 2; node 0 (the smallest id, the leader) has none, so it can
    // stop without taking an admin with it.
    let admin = json!({ "sub": "root-b", "roles": ["admin"] });
    let mut admin_b = cluster[1].login_with(admin).await;
    let admin = json!({ "sub": "root-c", "roles": ["admin"] });
    let mut admin_c = cluster[2].login_with(admin).await;
    // lobby on nodes 0 and 1 (one room), side on node 2; carol on nodes 0 and 2 (one
    // user); one connection on node 0 that never authenticates.
    let mut alice = cluster[0].login("alice").await;
    alice.join("lobby").await;
    let mut bob = cluster[1].login("bob").await;
    bob.join("lobby").await;
    let _carol_a = cluster[0].login("carol").await;
    let mut carol_c = cluster[2].login("carol").await;
    carol_c.join("side").await;
    let _anonymous = cluster[0].connect().await;

    // Summed per node, users would be 6 and rooms 3.
    let everyone = json!({ "connections": 7, "users": 5, "rooms": 2 });
    for node in &cluster.nodes {
        let stats = stats_reach(node, &everyone).await;
        assert_eq!(stats["authenticated"], 6, "{stats}");
    }
    one_update_per_tick(&mut admin_b, &everyone, 5).await;
    one_update_per_tick(&mut admin_c, &everyone, 5).await;

    // The leader goes: once its beat is older than the TTL, node 1 pushes, and node 0's
    // share is gone from the numbers.
    cluster.nodes.remove(0).stop().await;
    let rest = json!({ "connections": 4, "users": 4, "rooms": 2 });
    one_update_per_tick(&mut admin_b, &rest, 5).await;
    one_update_per_tick(&mut admin_c, &rest, 5).await;
    for node in &cluster.nodes {
        stats_reach(node, &rest).await;
    }
    cluster.stop().await;
}

/// The next `stock_update` of AAPL: (timestamp, price, change).
async fn aapl(client: &mut Client) -> (u64, f64, f64) {
    let update = client.wait_for("stock_update").await;
    let item = update["data"]
        .as_array()
        .and_then(|items| items.iter().find(|item| item["key"] == "AAPL"))
        .unwrap_or_else(|| panic!("AAPL in {update}"));
    (
        item["timestamp"].as_u64().expect("timestamp"),
        item["price"].as_f64().expect("price"),
        item["change"].as_f64().expect("change"),
    )
}

/// `n` consecutive AAPL ticks come from one feed, once each: each price is the previous
/// one plus its change, and no two come within half a tick. Two feeds (their own random
/// walks) interleaved break both.
async fn one_feed(client: &mut Client, n: usize) {
    let mut before = aapl(client).await;
    for _ in 0..n {
        let tick = aapl(client).await;
        assert!(
            tick.0 >= before.0 + DEMO_TICK_MS / 2,
            "two ticks within one: {before:?} then {tick:?}"
        );
        assert!(
            (tick.1 - before.1 - tick.2).abs() < 0.005,
            "a tick of another feed: {before:?} then {tick:?}"
        );
        before = tick;
    }
}

async fn subscriber(node: &TestServer, user: &str) -> Client {
    let mut client = node.login(user).await;
    let reply = client
        .request(
            json!({ "type": "subscribe", "topic": "stocks", "keys": ["AAPL"] }),
            json!("s"),
        )
        .await;
    assert_eq!(reply["type"], "reply", "{reply}");
    client
}

#[tokio::test]
async fn the_demo_feed_ticks_once_across_nodes_that_all_have_it_on_and_moves_when_its_node_stops() {
    let mut cluster = cluster!(
        2,
        Settings {
            demo: Some(true),
            ..Settings::default()
        }
    );
    let mut on_0 = subscriber(&cluster[0], "dora").await;
    let mut on_1 = subscriber(&cluster[1], "erin").await;
    one_feed(&mut on_0, 5).await;
    one_feed(&mut on_1, 5).await;

    // Node 0 ran it; after its TTL node 1 does (its own walk, from after the stop).
    cluster.nodes.remove(0).stop().await;
    drop(on_0);
    let stopped = roomcast_server::now_ms();
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    while aapl(&mut on_1).await.0 <= stopped {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed did not move"
        );
    }
    one_feed(&mut on_1, 5).await;
    cluster.stop().await;
}
