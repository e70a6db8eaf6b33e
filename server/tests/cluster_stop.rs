//! A node that stops answering (its process stopped with SIGSTOP: alive to the cluster
//! until its TTL runs out, but silent) costs the rest of the cluster nothing it relies
//! on: a connection listing through another node still shows the silent node's
//! connections, from the registry, instead of failing; an acknowledged send to one of
//! them comes back `timeout`; and for a node that dies while its clients are awaited,
//! `disconnected` (CLUSTER.md §2.5, §2.6).

mod cluster_support;

use std::time::{Duration, Instant};

use cluster_support::*;
use serde_json::{Value, json};

/// A heartbeat slow enough that a stopped node stays "alive" for the whole first part.
const SLOW: [(&str, &str); 2] = [
    ("ROOMCAST_NODE_HEARTBEAT_MS", "500"),
    ("ROOMCAST_NODE_TTL_MS", "5000"),
];

async fn api(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("http://{}{path}", node.addr))
        .bearer_auth(API_KEY)
        .timeout(Duration::from_secs(20));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the API answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The client id in the `auth_ok` a fresh `member` got is not kept by it: read it back
/// from the node's own listing.
async fn only_client_of(node: &Node) -> String {
    let (status, body) = api(node, reqwest::Method::GET, "/api/connections", None).await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{body}");
    items[0]["clientId"].as_str().expect("clientId").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_is_listed_from_the_registry_and_its_clients_time_out_or_disconnect() {
    let Some(redis) = RedisPrefix::create().await else {
        return;
    };
    let Some(store) = PgSchema::create().await else {
        return;
    };
    let a = Node::start_with("node-a", &redis, &store, &SLOW);
    let b = Node::start_with("node-b", &redis, &store, &SLOW);
    let _alice = member(a.addr, "alice").await;
    let alice = only_client_of(&a).await;
    let _bob = member(b.addr, "bob").await;

    a.signal("STOP");
    let started = Instant::now();
    let (status, body) = api(&b, reqwest::Method::GET, "/api/connections", None).await;
    assert_eq!(status, 200, "a silent node is no error: {body}");
    let listed: Vec<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["clientId"].as_str())
        .collect();
    assert!(
        listed.contains(&alice.as_str()),
        "alice, from the registry: {body}"
    );
    assert_eq!(listed.len(), 2, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    let (status, body) = api(
        &b,
        reqwest::Method::POST,
        "/api/send",
        Some(
            json!({ "clientId": alice, "message": { "type": "t" }, "ack": true, "timeoutMs": 500 }),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "results": { alice.as_str(): { "success": false, "error": "timeout" } } }),
        "the node lives (within its TTL) but did not answer"
    );

    // It comes back and beats again; then it dies while its client is awaited: the
    // client is reported disconnected at the deadline, though the node's key lives on
    // for its TTL (5 s): its subscription went with the process.
    a.signal("CONT");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let waiting = {
        let addr = b.addr;
        let alice = alice.clone();
        tokio::spawn(async move {
            let body = json!({ "clientId": alice, "message": { "type": "t" }, "ack": true, "timeoutMs": 1500 });
            let response = reqwest::Client::new()
                .post(format!("http://{addr}/api/send"))
                .bearer_auth(API_KEY)
                .json(&body)
                .timeout(Duration::from_secs(20))
                .send()
                .await
                .expect("the API answered");
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut a = a;
    a.kill();
    let (status, body) = waiting.await.expect("the send task");
    assert_eq!(status, 200, "{body}\n{}", b.logs());
    assert_eq!(
        body,
        json!({ "results": { alice.as_str(): { "success": false, "error": "disconnected" } } }),
        "{}",
        b.logs()
    );
}
