//! What a cluster does when its bus fails (CLUSTER.md §2.8), each on a `redis-server` of
//! the test's own (never the shared one): a bus that drops subscribers while chats flow
//! loses no chat and repeats none on any node; a Redis that is stopped and started again
//! empty leaves local delivery working, lets chats still cross nodes (read from the
//! store), and is subscribed again when it is back; `/metrics` shows the bus away, the
//! publishes lost and the chats read back from the store.

use std::time::Duration;

use roomcast_server::Settings;
use roomcast_tests::cluster::Cluster;
use roomcast_tests::proxy::Proxy;
use roomcast_tests::services::{PrivateRedis, RedisPrefix};
use roomcast_tests::{Client, TestServer};
use serde_json::json;

/// A private Redis and `n` nodes on it, or the test is skipped (loudly).
macro_rules! cluster_on_private_redis {
    ($n:expr) => {{
        let Some(redis) = PrivateRedis::start().await else {
            return;
        };
        let Some(prefix) = RedisPrefix::on(&redis.url()).await else {
            return;
        };
        let Some(cluster) = Cluster::on(prefix, $n, Settings::default()).await else {
            return;
        };
        (redis, cluster)
    }};
}

async fn member(node: &TestServer, user: &str, room: &str) -> Client {
    let mut client = node.login(user).await;
    client.join(room).await;
    client
}

/// Reads chats of `room` until `count` arrived; returns their contents and ids, failing
/// on anything but chats and presence notices.
async fn chats(client: &mut Client, count: usize) -> Vec<(i64, String)> {
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        let message = client
            .try_recv(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("only {} of {count} chats arrived: {got:?}", got.len()));
        match message["type"].as_str() {
            Some("chat") => got.push((
                message["message"].as_i64().expect("a number"),
                message["id"].as_str().expect("id").to_owned(),
            )),
            Some("user_join" | "user_leave" | "reply") => {}
            _ => panic!("unexpected {message}"),
        }
    }
    got
}

/// Every chat once, in the room's id order, the same on every node.
#[track_caller]
fn assert_one_run(label: &str, got: &[(i64, String)], expected: &[(i64, String)]) {
    assert_eq!(got.len(), expected.len(), "{label}: count");
    let ids: Vec<&String> = got.iter().map(|(_, id)| id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "{label}: in id order, each once");
    assert_eq!(got, expected, "{label}: the same run as the sender's node");
}

#[tokio::test]
async fn chats_from_two_nodes_reach_every_node_once_in_order_while_the_bus_drops_subscribers() {
    let (redis, cluster) = cluster_on_private_redis!(3);
    let mut alice = member(&cluster[0], "alice", "lobby").await;
    let mut bob = member(&cluster[1], "bob", "lobby").await;
    let mut carol = member(&cluster[2], "carol", "lobby").await;
    const EACH: i64 = 60;

    // alice (node 0) and bob (node 1) chat at once; meanwhile every subscriber
    // connection of the bus is killed, twice.
    let senders = async {
        for n in 0..EACH {
            alice
                .send(json!({ "type": "chat", "room": "lobby", "content": n }))
                .await;
            bob.send(json!({ "type": "chat", "room": "lobby", "content": 1000 + n }))
                .await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let killer = async {
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]).await;
        }
    };
    tokio::join!(senders, killer);

    let total = (2 * EACH) as usize;
    let at_alice = chats(&mut alice, total).await;
    let at_bob = chats(&mut bob, total).await;
    let at_carol = chats(&mut carol, total).await;
    let mut mine: Vec<i64> = at_alice
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| *n < 1000)
        .collect();
    assert_eq!(
        mine,
        (0..EACH).collect::<Vec<_>>(),
        "alice's own chats, in her order"
    );
    mine = at_carol
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| *n >= 1000)
        .collect();
    assert_eq!(
        mine,
        (1000..1000 + EACH).collect::<Vec<_>>(),
        "bob's, in his order"
    );
    let expected = at_alice.clone();
    assert_one_run("alice on node 0", &at_alice, &expected);
    assert_one_run("bob on node 1", &at_bob, &expected);
    assert_one_run("carol on node 2", &at_carol, &expected);
    for client in [&mut alice, &mut bob, &mut carol] {
        client.expect_silence(Duration::from_millis(500)).await;
    }
    // The bus really dropped them: every node had to subscribe again.
    for node in &cluster.nodes {
        let (_, health) = node.get("/healthz").await;
        assert!(
            health["broker"]["resubscribes"].as_u64() >= Some(2),
            "{health}"
        );
    }
    cluster.stop().await;
}

#[tokio::test]
async fn chats_cross_nodes_while_redis_is_down_and_live_again_once_it_is_back_empty() {
    let (mut redis, cluster) = cluster_on_private_redis!(2);
    let mut alice = member(&cluster[0], "alice", "lobby").await;
    let mut bob = member(&cluster[1], "bob", "lobby").await;
    assert_eq!(alice.wait_for("user_join").await["user"]["userId"], "bob");

    redis.kill();
    // Local delivery goes on, and the sender hears its reply.
    alice
        .send(json!({ "type": "chat", "room": "lobby", "content": 1, "id": "during" }))
        .await;
    assert_eq!(chats(&mut alice, 1).await[0].0, 1);
    // bob, on the other node, gets it through the position check.
    let got = chats(&mut bob, 1).await;
    assert_eq!(got[0].0, 1, "{got:?}");
    // A newcomer is still let in, and a private to it on the same node is delivered:
    // the per-user limit and "online" fall back to what the node sees.
    let mut carol = cluster[0].login("carol").await;
    let sent = alice
        .request(
            json!({ "type": "private", "targetUserId": "carol", "content": "hi" }),
            json!("p"),
        )
        .await;
    assert_eq!(sent["data"]["delivered"], true, "{sent}");
    assert_eq!(carol.wait_for("private").await["message"], "hi");
    // Degraded, not down: the node still serves its own connections.
    for node in &cluster.nodes {
        let health = node.health_becomes("degraded").await;
        assert_eq!(health["broker"]["connected"], false, "{health}");
        assert_eq!(health["store"]["connected"], true, "{health}");
    }

    redis.restart().await;
    // Once both nodes have subscribed again, a chat crosses live.
    for node in &cluster.nodes {
        let health = node.health_becomes("ok").await;
        assert!(
            health["broker"]["resubscribes"].as_u64() >= Some(1),
            "{health}"
        );
    }
    bob.send(json!({ "type": "chat", "room": "lobby", "content": 2 }))
        .await;
    let got = chats(&mut alice, 1).await;
    assert_eq!(got[0].0, 2, "{got:?}");
    assert_eq!(chats(&mut bob, 1).await[0].0, 2, "bob's own, once");
    let (status, body) = cluster[1]
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "lobby" }, "message": { "type": "notice" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        alice.wait_for("notice").await["type"],
        "notice",
        "live again"
    );
    // Each node wrote its presence back into the empty Redis, and announced nothing:
    // a newcomer sees both members, and alice heard no second user_join for bob.
    // (The keys come back at each node's first heartbeat after the restart: a few
    // hundred ms at most, so the newcomer looks again until then.)
    let mut late = cluster[1].login("late").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let list = late.join("lobby").await;
        let mut users: Vec<String> = list["users"]
            .as_array()
            .expect("users")
            .iter()
            .filter_map(|u| u["userId"].as_str().map(str::to_owned))
            .collect();
        users.sort_unstable();
        if users == ["alice", "bob", "late"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "presence never came back: {list}"
        );
        late.send(json!({ "type": "leave", "room": "lobby", "id": "again" }))
            .await;
        assert_eq!(late.wait_for("reply").await["id"], "again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let join = alice.wait_for("user_join").await;
    assert_eq!(join["user"]["userId"], "late", "no storm of joins: {join}");
    cluster.stop().await;
}

/// Polls `series` of node's `/metrics` until `ok` holds (10 s at most); returns it.
async fn metric_becomes(node: &TestServer, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let value = node.metric(series).await;
        if let Some(value) = value.filter(|v| ok(*v)) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} stayed at {value:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_show_the_bus_away_the_publishes_it_lost_and_the_chats_read_back() {
    let (mut redis, cluster) = cluster_on_private_redis!(2);
    let mut alice = member(&cluster[0], "alice", "lobby").await;
    let mut bob = member(&cluster[1], "bob", "lobby").await;
    assert_eq!(alice.wait_for("user_join").await["user"]["userId"], "bob");
    for node in &cluster.nodes {
        assert_eq!(node.metric("roomcast_cluster_nodes").await, Some(2.0));
        assert_eq!(node.metric("roomcast_bus_connected").await, Some(1.0));
    }
    let failures = cluster[0].metric("roomcast_bus_publish_failures").await;
    let repairs = cluster[1].metric("roomcast_gap_repairs_total").await;
    let (failures, repairs) = (
        failures.expect("publish failures"),
        repairs.expect("repairs"),
    );

    redis.kill();
    for node in &cluster.nodes {
        metric_becomes(node, "roomcast_bus_connected", |v| v == 0.0).await;
    }
    // alice's chat cannot be published; bob gets it from the store, counted as repaired.
    alice
        .send(json!({ "type": "chat", "room": "lobby", "content": 1 }))
        .await;
    assert_eq!(chats(&mut alice, 1).await[0].0, 1);
    assert_eq!(chats(&mut bob, 1).await[0].0, 1);
    metric_becomes(&cluster[0], "roomcast_bus_publish_failures", |v| {
        v > failures
    })
    .await;
    let repaired = cluster[1].metric("roomcast_gap_repairs_total").await;
    assert!(
        repaired >= Some(repairs + 1.0),
        "bob's chat came from the store: {repaired:?} after {repairs}"
    );

    redis.restart().await;
    for node in &cluster.nodes {
        metric_becomes(node, "roomcast_bus_connected", |v| v == 1.0).await;
        // The emptied Redis learns both nodes again at their next beats.
        metric_becomes(node, "roomcast_cluster_nodes", |v| v == 2.0).await;
    }
    cluster.stop().await;
}

#[tokio::test]
async fn a_node_whose_subscription_goes_deaf_without_closing_subscribes_again() {
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let Some(prefix) = RedisPrefix::on(&redis.url()).await else {
        return;
    };
    // Slow beats, so that the deaf node is never taken for dead meanwhile.
    let slow = Settings {
        node_heartbeat_ms: Some(400),
        node_ttl_ms: Some(6_000),
        ..Settings::default()
    };
    let Some(mut cluster) = Cluster::on(prefix, 1, slow.clone()).await else {
        return;
    };
    // Node 1 reaches Redis through a proxy that can freeze its connections.
    let proxy = Proxy::start(&format!("127.0.0.1:{}", redis.port)).await;
    cluster
        .add(Settings {
            broker: Some(format!("redis://{}/0", proxy.addr)),
            ..slow
        })
        .await;
    cluster.settled().await;
    let mut alice = member(&cluster[0], "alice", "lobby").await;
    let mut bob = member(&cluster[1], "bob", "lobby").await;
    assert_eq!(alice.wait_for("user_join").await["user"]["userId"], "bob");

    // The subscription stays open but hears nothing: only the node's own heartbeat,
    // missing on the bus, tells.
    proxy.freeze();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, health) = cluster[1].get("/healthz").await;
        if health["broker"]["resubscribes"].as_u64() >= Some(1) && health["status"] == "ok" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the deaf subscription was never replaced: {health}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Live again: a notice (not a chat, which the position check would bring anyway)
    // from node 0 reaches bob on node 1.
    let (status, body) = cluster[0]
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "lobby" }, "message": { "type": "notice" } }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(bob.wait_for("notice").await["type"], "notice");
    let _ = alice.try_recv(Duration::from_millis(100)).await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_redis_outage_longer_than_the_ttl_that_keeps_its_data_storms_no_one() {
    // Each node reaches the shared Redis through a proxy of its own; the test cuts both
    // for longer than the TTL and restores node 0's first: back alone, it finds node 1's
    // beat older than the TTL, and must give node 1 a TTL to beat again rather than reap
    // it (a leave for everyone on node 1, then silence: they never rejoin).
    let (mut via_a, mut via_b) = (
        Proxy::start("127.0.0.1:6379").await,
        Proxy::start("127.0.0.1:6379").await,
    );
    let Some(prefix) = RedisPrefix::on(&format!("redis://{}/0", via_a.addr)).await else {
        return;
    };
    let Some(mut cluster) = Cluster::on(prefix, 1, Settings::default()).await else {
        return;
    };
    cluster
        .add(Settings {
            broker: Some(format!("redis://{}/0", via_b.addr)),
            ..Settings::default()
        })
        .await;
    cluster.settled().await;
    let mut alice = member(&cluster[0], "alice", "lobby").await;
    let _bob = member(&cluster[1], "bob", "lobby").await;
    assert_eq!(alice.wait_for("user_join").await["user"]["userId"], "bob");

    via_a.cut();
    via_b.cut();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    via_a.restore().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    via_b.restore().await;
    for node in &cluster.nodes {
        node.health_becomes("ok").await;
    }
    // Past another TTL and the reaper's chance to act: nobody left, nobody joined.
    let noticed = alice.try_recv(Duration::from_millis(2_000)).await;
    assert!(noticed.is_none(), "no presence storm: {noticed:?}");
    let mut late = cluster[1].login("late").await;
    let list = late.join("lobby").await;
    let mut users: Vec<&str> = list["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["userId"].as_str())
        .collect();
    users.sort_unstable();
    assert_eq!(users, ["alice", "bob", "late"], "{list}");
    cluster.stop().await;
}
