//! Private messages and notifications across nodes (CLUSTER.md §2.7): each is stored
//! undelivered, published, and marked delivered once a connection of its addressee got
//! it, on whichever node. So a user who connects on any node while messages stream in
//! gets each one once and in order, what waited merged with what arrives live; and a message the bus could not carry to the addressee's node (cut off
//! from Redis) is handed over when that node is back, not only at the next connect.

use std::time::Duration;

use roomcast_server::Settings;
use roomcast_tests::Client;
use roomcast_tests::cluster::Cluster;
use roomcast_tests::proxy::Proxy;
use serde_json::{Value, json};

/// Sends a private message that must be accepted; returns the reply's `data`.
async fn private(sender: &mut Client, to: &str, n: usize) -> Value {
    let reply = sender
        .request(
            json!({ "type": "private", "targetUserId": to, "content": { "n": n } }),
            json!(format!("p{n}")),
        )
        .await;
    assert_eq!(reply["type"], "reply", "{reply}");
    reply["data"].clone()
}

/// Everything addressed to the user that arrives on `client` until it has been quiet for
/// `quiet`: the ids of private messages and notifications, in arrival order.
async fn addressed(client: &mut Client, quiet: Duration) -> Vec<String> {
    let mut ids = Vec::new();
    while let Some(message) = client.try_recv(quiet).await {
        match message["type"].as_str() {
            Some("private" | "notification") => {
                ids.push(message["id"].as_str().expect("id").to_owned());
            }
            Some("auth_ok") => {}
            _ => panic!("unexpected {message}"),
        }
    }
    ids
}

#[tokio::test]
async fn users_connecting_on_any_node_while_privates_stream_in_get_each_once_in_order() {
    let fast = Settings {
        rate_limit_per_sec: Some(1_000),
        ..Settings::default()
    };
    let Some(cluster) = Cluster::with(2, fast).await else {
        return;
    };
    // Eight senders, each with a recipient of its own, on the other node: one sender
    // per recipient keeps that recipient's messages in one order on the bus.
    const USERS: usize = 8;
    const EACH: usize = 60;
    let mut senders = Vec::new();
    for i in 0..USERS {
        let mut alice = cluster[(i + 1) % 2].login(&format!("alice{i}")).await;
        senders.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for n in 0..EACH {
                let reply = private(&mut alice, &format!("bob{i}"), n).await;
                sent.push(reply["id"].as_str().expect("id").to_owned());
            }
            sent
        }));
    }
    // Each recipient connects once, on one node or the other, while its messages stream
    // in: its catch-up of what waited races the live copies of what is being sent.
    let mut bobs = Vec::new();
    for i in 0..USERS {
        tokio::time::sleep(Duration::from_millis(25)).await;
        bobs.push(cluster[i % 2].login(&format!("bob{i}")).await);
    }
    let mut sent = Vec::new();
    for sender in senders {
        sent.push(sender.await.expect("a sender"));
    }
    for (i, bob) in bobs.iter_mut().enumerate() {
        let got = addressed(bob, Duration::from_millis(500)).await;
        assert_eq!(got, sent[i], "bob{i}: each once, in order, none lost");
    }
    cluster.stop().await;
}

#[tokio::test]
async fn what_the_bus_could_not_carry_to_a_node_cut_off_from_redis_arrives_once_it_is_back() {
    // Node 1 reaches Redis through a proxy the test cuts: what node 0 publishes for Bob,
    // who is on node 1, reaches no one; it stays pending in the store until node 1
    // subscribes again and hands it over, live.
    let mut via = Proxy::start("127.0.0.1:6379").await;
    let Some(cluster) = Cluster::one_behind(&via, Settings::default()).await else {
        return;
    };
    let mut alice = cluster[0].login("alice").await;
    let mut bob = cluster[1].login("bob").await;
    assert!(
        addressed(&mut bob, Duration::from_millis(200))
            .await
            .is_empty()
    );

    via.cut();
    cluster[1].health_becomes("degraded").await;
    let reply = private(&mut alice, "bob", 1).await;
    // The reply says Bob is online (the registry has his connection), though nothing
    // can reach his node yet.
    assert_eq!(reply["delivered"], true, "{reply}");
    let (status, notified) = cluster[0]
        .post(
            "/api/notify",
            json!({ "userId": "bob", "title": "t", "content": "while cut off" }),
        )
        .await;
    assert_eq!(status, 200, "{notified}");
    assert_eq!(notified["delivered"], 0, "{notified}");
    assert!(
        addressed(&mut bob, Duration::from_millis(300))
            .await
            .is_empty(),
        "nothing can reach node 1 while it is cut off"
    );

    via.restore().await;
    cluster[1].health_becomes("ok").await;
    let got = addressed(&mut bob, Duration::from_millis(1_500)).await;
    let expected = [
        reply["id"].as_str().expect("id"),
        notified["id"].as_str().expect("id"),
    ];
    assert_eq!(got, expected, "both, once, in order, live");
    // Handed over means delivered: the next connect has nothing pending.
    let mut again = cluster[0].login("bob").await;
    assert!(
        addressed(&mut again, Duration::from_millis(300))
            .await
            .is_empty()
    );
    cluster.stop().await;
}

#[tokio::test]
async fn a_private_sent_from_a_node_cut_off_from_redis_arrives_once_it_is_back() {
    // Now the sender's node is the one behind the proxy: what it publishes while cut off
    // reaches no other node. When it subscribes again it asks every node to hand over
    // what is still pending, and Bob, on the other node, gets it live.
    let mut via = Proxy::start("127.0.0.1:6379").await;
    let Some(cluster) = Cluster::one_behind(&via, Settings::default()).await else {
        return;
    };
    let mut alice = cluster[1].login("alice").await;
    let mut bob = cluster[0].login("bob").await;
    assert!(
        addressed(&mut bob, Duration::from_millis(200))
            .await
            .is_empty()
    );

    via.cut();
    cluster[1].health_becomes("degraded").await;
    let publish_failures = |health: &Value| health["broker"]["publishFailures"].as_u64();
    let before = publish_failures(&cluster[1].get("/healthz").await.1);
    let reply = private(&mut alice, "bob", 1).await;
    assert!(
        addressed(&mut bob, Duration::from_millis(300))
            .await
            .is_empty(),
        "nothing leaves node 1 while it is cut off"
    );
    // Long enough for node 1's publisher to give the message up (its retries end).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while publish_failures(&cluster[1].get("/healthz").await.1) <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node 1 never gave the message up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    via.restore().await;
    cluster[1].health_becomes("ok").await;
    let got = addressed(&mut bob, Duration::from_millis(1_500)).await;
    assert_eq!(got, [reply["id"].as_str().expect("id")], "once, live");
    let mut again = cluster[1].login("bob").await;
    assert!(
        addressed(&mut again, Duration::from_millis(300))
            .await
            .is_empty()
    );
    cluster.stop().await;
}
