//! The reconcile (CLUSTER.md §2.4, `docs/cluster.md`): each node makes its own presence
//! and registry keys in Redis match what it has, so a write lost in a short Redis blip
//! (the node lives on, its key never expires) is made good once Redis is back. A leave
//! lost that way reaches the other nodes as one `user_leave`, and frees the user's
//! per-user slot; keys missing for a user still here come back without a `user_join`.
//!
//! Each test runs on a `redis-server` of its own; node 0 reaches it through a proxy that
//! the test cuts, node 1 directly. The TTL is long (6 s), so a cut of a second or two is
//! a blip: nobody is reaped, and only the reconcile can repair.

use std::time::Duration;

use roomcast_server::Settings;
use roomcast_tests::cluster::Cluster;
use roomcast_tests::proxy::Proxy;
use roomcast_tests::services::{PrivateRedis, RedisPrefix};
use roomcast_tests::{Client, Closed, TestServer};
use serde_json::{Value, json};

/// How long a repair may take: a pass after Redis is back, and the second look (5 s)
/// that removes a stale entry, with room to spare.
const REPAIRED_WITHIN: Duration = Duration::from_secs(20);

fn settings() -> Settings {
    Settings {
        node_heartbeat_ms: Some(200),
        node_ttl_ms: Some(6_000),
        max_connections_per_user: Some(2),
        ..Settings::default()
    }
}

/// A private Redis, a proxy to it, node 0 behind the proxy and node 1 direct.
async fn two_nodes() -> Option<(PrivateRedis, Proxy, Cluster)> {
    let redis = PrivateRedis::start().await?;
    let proxy = Proxy::start(&format!("127.0.0.1:{}", redis.port)).await;
    let prefix = RedisPrefix::on(&redis.url()).await?;
    let mut cluster = Cluster::on(prefix, 0, settings()).await?;
    cluster
        .add(Settings {
            broker: Some(format!("redis://{}/0", proxy.addr)),
            ..settings()
        })
        .await;
    cluster.add(settings()).await;
    cluster.settled().await;
    Some((redis, proxy, cluster))
}

async fn member(node: &TestServer, user: &str, room: &str) -> (Client, Value) {
    let mut client = node.login(user).await;
    let list = client.join(room).await;
    (client, list)
}

fn user_ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["userId"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

/// The presence notices about `user` that arrive until `window` passes without one
/// (any notice), as their types; fails on anything but presence notices.
async fn notices_about(client: &mut Client, user: &str, window: Duration) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(message) = client.try_recv(window).await {
        let kind = message["type"].as_str().unwrap_or_default();
        assert!(
            kind == "user_join" || kind == "user_leave",
            "only presence notices, got {message}"
        );
        if message["user"]["userId"] == user {
            seen.push(kind.to_owned());
        }
    }
    seen
}

/// A newcomer on `node` joins `room` until its `user_list` satisfies `wanted` (leaving
/// between tries), within [`REPAIRED_WITHIN`]; returns the last list.
async fn user_list_until(
    node: &TestServer,
    room: &str,
    wanted: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut late = node.login("late").await;
    let deadline = tokio::time::Instant::now() + REPAIRED_WITHIN;
    loop {
        let users = user_ids(&late.join(room).await);
        if wanted(&users) {
            return users;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the user_list never changed: {users:?}"
        );
        late.send(json!({ "type": "leave", "room": room, "id": "again" }))
            .await;
        assert_eq!(late.wait_for("reply").await["id"], "again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Authenticates as `user` on `node`: the client when let in, else the close code of
/// its refusal (which must be `limit_exceeded`).
async fn authenticate(node: &TestServer, user: &str) -> (Option<Client>, Option<Closed>) {
    let mut client = node.connect().await;
    client
        .send(json!({ "type": "auth", "token": node.token(user), "id": "a" }))
        .await;
    let answer = client.recv().await;
    if answer["type"] == "auth_ok" {
        return (Some(client), None);
    }
    assert_eq!(answer["code"], "limit_exceeded", "{answer}");
    let (_, closed) = client.closed().await;
    (None, Some(closed))
}

#[tokio::test]
async fn a_leave_lost_in_a_redis_blip_is_announced_once_and_frees_the_users_slot() {
    let Some((_redis, mut proxy, cluster)) = two_nodes().await else {
        return;
    };
    let (mut watcher, _) = member(&cluster[1], "watcher", "lobby").await;
    // A member on alice's own node, which hears her leave when it happens.
    let (mut neighbour, _) = member(&cluster[0], "neighbour", "lobby").await;
    let (alice, _) = member(&cluster[0], "alice", "lobby").await;
    assert_eq!(
        notices_about(&mut watcher, "alice", Duration::from_millis(300)).await,
        ["user_join"]
    );
    assert_eq!(
        notices_about(&mut neighbour, "alice", Duration::from_millis(300)).await,
        ["user_join"]
    );

    // Node 0 loses Redis; alice disconnects from it meanwhile: its `LEFT`, seat and
    // slot release all fail, and so does the `user_leave` it publishes.
    proxy.cut();
    cluster[0].health_becomes("degraded").await;
    let gone = format!("/api/connections/{}", alice.client_id);
    alice.close().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cluster[0].get(&gone).await.0 != 404 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice never left node 0"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore().await;
    cluster[0].health_becomes("ok").await;

    // Node 1's member hears alice leave, once.
    let deadline = tokio::time::Instant::now() + REPAIRED_WITHIN;
    let mut seen = Vec::new();
    while !seen.contains(&"user_leave".to_owned()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no user_leave for alice: {seen:?}"
        );
        seen.extend(notices_about(&mut watcher, "alice", Duration::from_millis(500)).await);
    }
    seen.extend(notices_about(&mut watcher, "alice", Duration::from_secs(2)).await);
    assert_eq!(seen, ["user_leave"], "exactly one notice");
    // Her node's member heard it when she left, and not again from the repair.
    assert_eq!(
        notices_about(&mut neighbour, "alice", Duration::from_millis(300)).await,
        ["user_leave"],
        "one notice on her own node too"
    );
    // A newcomer does not see her.
    let users = user_list_until(&cluster[1], "lobby", |_| true).await;
    assert_eq!(users, ["late", "neighbour", "watcher"]);
    // Her slot on node 0 is free: she may open as many connections as the limit (2).
    let (first, _) = authenticate(&cluster[1], "alice").await;
    let (second, closed) = authenticate(&cluster[1], "alice").await;
    assert!(first.is_some() && second.is_some(), "refused: {closed:?}");
    cluster.stop().await;
}

#[tokio::test]
async fn keys_missing_for_a_user_still_here_are_written_back_without_a_user_join() {
    let Some((redis, _proxy, cluster)) = two_nodes().await else {
        return;
    };
    let (mut watcher, _) = member(&cluster[1], "watcher", "lobby").await;
    let (_alice, _) = member(&cluster[0], "alice", "lobby").await;
    assert_eq!(
        notices_about(&mut watcher, "alice", Duration::from_millis(300)).await,
        ["user_join"]
    );

    // Node 0's keys for alice go (as if its `ENTERED` and `CLAIM` had failed): its entry
    // of her in the room and her per-user slot.
    let prefix = &cluster.redis.prefix;
    redis
        .command(&["HDEL", &format!("{prefix}:r:lobby:n:node-0"), "alice"])
        .await;
    redis.command(&["DEL", &format!("{prefix}:u:alice")]).await;

    // They come back: a newcomer sees her again ...
    let users = user_list_until(&cluster[1], "lobby", |users| {
        users.contains(&"alice".to_owned())
    })
    .await;
    assert_eq!(users, ["alice", "late", "watcher"]);
    // ... her slot counts again (one more connection within the limit of 2, not two) ...
    let (second, _) = authenticate(&cluster[1], "alice").await;
    assert!(second.is_some(), "her second connection is let in");
    let (third, closed) = authenticate(&cluster[1], "alice").await;
    assert!(third.is_none(), "her third connection is refused");
    assert_eq!(closed, Some(Closed::Code(4009)));
    // ... and nobody heard her join again.
    assert_eq!(
        notices_about(&mut watcher, "alice", Duration::from_millis(1_000)).await,
        Vec::<String>::new()
    );
    cluster.stop().await;
}

#[tokio::test]
async fn a_node_reaped_while_only_cut_off_announces_its_users_return() {
    // Here the TTL is short (1 s): a cut of 2.5 s gets node 0 reaped, and its user
    // announced as gone. When the link comes back, node 0 rewrites its keys and the
    // rooms hear its user join again.
    let short = Settings {
        node_ttl_ms: Some(1_000),
        ..settings()
    };
    let Some(redis) = PrivateRedis::start().await else {
        return;
    };
    let mut proxy = Proxy::start(&format!("127.0.0.1:{}", redis.port)).await;
    let Some(prefix) = RedisPrefix::on(&redis.url()).await else {
        return;
    };
    let Some(mut cluster) = Cluster::on(prefix, 0, short.clone()).await else {
        return;
    };
    cluster
        .add(Settings {
            broker: Some(format!("redis://{}/0", proxy.addr)),
            ..short.clone()
        })
        .await;
    cluster.add(short).await;
    cluster.settled().await;
    let (mut watcher, _) = member(&cluster[1], "watcher", "lobby").await;
    let (_bob, _) = member(&cluster[0], "bob", "lobby").await;
    assert_eq!(
        notices_about(&mut watcher, "bob", Duration::from_millis(300)).await,
        ["user_join"]
    );

    proxy.cut();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen.contains(&"user_leave".to_owned()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node 0 was never reaped: {seen:?}"
        );
        seen.extend(notices_about(&mut watcher, "bob", Duration::from_millis(300)).await);
    }
    proxy.restore().await;
    cluster[0].health_becomes("ok").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(&"user_join".to_owned()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never joined again: {seen:?}"
        );
        seen.extend(notices_about(&mut watcher, "bob", Duration::from_millis(300)).await);
    }
    seen.extend(notices_about(&mut watcher, "bob", Duration::from_secs(1)).await);
    assert_eq!(
        seen,
        ["user_leave", "user_join"],
        "gone, then back, once each"
    );
    let users = user_list_until(&cluster[1], "lobby", |users| {
        users.contains(&"bob".to_owned())
    })
    .await;
    assert_eq!(users, ["bob", "late", "watcher"]);
    cluster.stop().await;
}
