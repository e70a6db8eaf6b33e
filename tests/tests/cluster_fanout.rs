//! Three nodes on one Redis act as one server for every delivery target (CONTRACT §10):
//! a room, several rooms (each connection once), everyone, a user, a role, one client,
//! a topic; the HTTP API on any node reports the reach on every node; acknowledged
//! deliveries come back with every client's outcome; the API seats a connection in a
//! room, or takes it out, through any node. Each node is its own server on its own port,
//! as behind a load balancer.

use std::time::Duration;

use roomcast_tests::cluster::Cluster;
use roomcast_tests::{Client, TestServer, response};
use serde_json::{Value, json};

/// Three nodes, or the test is skipped (loudly) when Redis is unreachable.
macro_rules! cluster {
    ($n:expr) => {
        match Cluster::start($n).await {
            Some(cluster) => cluster,
            None => return,
        }
    };
}

/// The next message is the answer to a ping sent now: nothing else was pending.
async fn assert_quiet(client: &mut Client) {
    client.send(json!({ "type": "ping", "id": "quiet" })).await;
    let next = client.recv().await;
    assert_eq!(next["id"], "quiet", "expected nothing pending, got {next}");
}

/// Receives `message` (an application message) exactly as posted.
async fn gets(client: &mut Client, message: &Value) {
    let got = client
        .wait_for(message["type"].as_str().expect("type"))
        .await;
    assert_eq!(&got, message);
}

fn payload(label: &str) -> Value {
    json!({ "type": "cluster_test", "label": label })
}

/// Logs `user` in on `node` and joins `rooms`, reading past the join notices.
async fn member(node: &TestServer, user: &str, rooms: &[&str]) -> Client {
    let mut client = node.login(user).await;
    for room in rooms {
        client.join(room).await;
    }
    client
}

/// Reads every `user_join` that is pending, so that what follows is the test's traffic.
async fn drain_notices(clients: &mut [&mut Client]) {
    for client in clients.iter_mut() {
        while let Some(next) = client.try_recv(Duration::from_millis(300)).await {
            assert!(
                next["type"] == "user_join",
                "only join notices were pending, got {next}"
            );
        }
    }
}

#[tokio::test]
async fn a_chat_reaches_the_rooms_members_on_every_node_once_and_in_order() {
    let cluster = cluster!(3);
    let mut alice = member(&cluster[0], "alice", &["lobby"]).await;
    let mut bob = member(&cluster[1], "bob", &["lobby"]).await;
    let mut carol = member(&cluster[2], "carol", &["lobby"]).await;
    let mut dave = member(&cluster[2], "dave", &["elsewhere"]).await;
    drain_notices(&mut [&mut alice, &mut bob, &mut carol]).await;

    for n in 0..20 {
        alice
            .send(json!({ "type": "chat", "room": "lobby", "content": n }))
            .await;
    }
    for client in [&mut alice, &mut bob, &mut carol] {
        for n in 0..20 {
            let chat = client.wait_for("chat").await;
            assert_eq!(chat["room"], "lobby");
            assert_eq!(chat["message"], n, "in order, each once: {chat}");
            assert_eq!(chat["from"]["userId"], "alice");
        }
        assert_quiet(client).await;
    }
    assert_quiet(&mut dave).await;
    cluster.stop().await;
}

#[tokio::test]
async fn join_notices_cross_nodes_and_a_room_is_heard_only_while_it_has_members() {
    let cluster = cluster!(2);
    let mut alice = member(&cluster[0], "alice", &["lobby"]).await;
    let mut bob = member(&cluster[1], "bob", &["lobby"]).await;
    let join = alice.wait_for("user_join").await;
    assert_eq!(join["user"]["userId"], "bob", "{join}");
    bob.send(json!({ "type": "leave", "room": "lobby", "id": "bye" }))
        .await;
    assert_eq!(bob.expect("reply").await["id"], "bye");
    let leave = alice.wait_for("user_leave").await;
    assert_eq!(leave["user"]["userId"], "bob", "{leave}");

    // Node 1 has no member left: a chat in the room does not reach bob there.
    alice
        .send(json!({ "type": "chat", "room": "lobby", "content": "after" }))
        .await;
    assert_eq!(alice.wait_for("chat").await["message"], "after");
    assert_quiet(&mut bob).await;
    // And once bob is back, it does.
    bob.join("lobby").await;
    alice
        .send(json!({ "type": "chat", "room": "lobby", "content": "back" }))
        .await;
    assert_eq!(bob.wait_for("chat").await["message"], "back");
    cluster.stop().await;
}

#[tokio::test]
async fn api_broadcasts_from_any_node_reach_every_target_on_every_node_once() {
    let cluster = cluster!(3);
    // alice: rooms a and b on node 0; bob: room a on node 1, role ops; carol: room b on
    // node 2, two connections (one on node 0).
    let mut alice = member(&cluster[0], "alice", &["a", "b"]).await;
    let mut bob = cluster[1]
        .login_with(json!({ "sub": "bob", "roles": ["ops"] }))
        .await;
    bob.join("a").await;
    let mut carol = member(&cluster[2], "carol", &["b"]).await;
    let mut carol_too = member(&cluster[0], "carol", &[]).await;
    drain_notices(&mut [&mut alice, &mut bob, &mut carol, &mut carol_too]).await;
    let everyone = 4;

    let cases: Vec<(Value, Vec<usize>)> = vec![
        (json!({ "room": "a" }), vec![0, 1]),
        (json!({ "rooms": ["a", "b"] }), vec![0, 1, 2]),
        (json!({ "all": true }), vec![0, 1, 2, 3]),
        (json!({ "user": "carol" }), vec![2, 3]),
        (json!({ "users": ["bob", "carol", "bob"] }), vec![1, 2, 3]),
        (json!({ "role": "ops" }), vec![1]),
    ];
    for (i, (to, reached)) in cases.into_iter().enumerate() {
        let message = payload(&format!("case {i}"));
        let node = &cluster[i % 3];
        let (status, body) = node
            .post("/api/broadcast", json!({ "to": to, "message": message }))
            .await;
        assert_eq!(status, 200, "{to}: {body}");
        assert_eq!(
            body["recipients"],
            reached.len(),
            "{to} from node {}: the reach on every node, {body}",
            i % 3
        );
        let mut clients = [&mut alice, &mut bob, &mut carol, &mut carol_too];
        for (c, client) in clients.iter_mut().enumerate() {
            if reached.contains(&c) {
                gets(client, &message).await;
            }
            assert_quiet(client).await;
        }
        assert!(reached.len() <= everyone);
    }
    cluster.stop().await;
}

#[tokio::test]
async fn send_reaches_a_client_on_another_node_and_unknown_ids_are_404_everywhere() {
    let cluster = cluster!(3);
    let mut bob = member(&cluster[1], "bob", &[]).await;
    let message = payload("direct");
    let (status, body) = cluster[2]
        .post(
            "/api/send",
            json!({ "clientId": bob.client_id, "message": message }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    gets(&mut bob, &message).await;
    assert_quiet(&mut bob).await;

    let (status, body) = cluster[0]
        .post(
            "/api/send",
            json!({ "clientId": "no-such-client", "message": message }),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    cluster.stop().await;
}

/// What node `index` has received from the bus so far (`/healthz`).
async fn received(cluster: &Cluster, index: usize) -> i64 {
    let (_, health) = cluster[index].get("/healthz").await;
    health["broker"]["received"].as_i64().expect("received")
}

#[tokio::test]
async fn what_is_for_one_client_goes_to_its_node_only() {
    // The registry names the node a connection is on: a send to it, and a request about
    // it, is published on that node's own channel, so a third node never hears it.
    let cluster = cluster!(3);
    let mut bob = member(&cluster[1], "bob", &[]).await;
    let (owner_before, other_before) = (received(&cluster, 1).await, received(&cluster, 2).await);
    const SENDS: i64 = 20;
    for n in 0..SENDS {
        let message = payload(&format!("direct {n}"));
        let (status, body) = cluster[0]
            .post(
                "/api/send",
                json!({ "clientId": bob.client_id, "message": message }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        gets(&mut bob, &message).await;
        let (status, body) = cluster[0]
            .get(&format!("/api/connections/{}", bob.client_id))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let owner = received(&cluster, 1).await - owner_before;
    let other = received(&cluster, 2).await - other_before;
    // Both hear the same heartbeats meanwhile; only the owner hears the sends and the
    // requests: exactly 2 * SENDS more, less a little for a heartbeat that one node read
    // before its count and the other after (without routing the difference is about 0).
    assert!(
        owner - other >= 2 * SENDS - 5,
        "node 1 received {owner} messages, node 2 {other}: the third node heard them too"
    );
    cluster.stop().await;
}

#[tokio::test]
async fn acknowledged_sends_report_every_client_on_every_node() {
    let cluster = cluster!(3);
    let mut alice = member(&cluster[0], "alice", &["orders"]).await;
    let mut bob = member(&cluster[1], "bob", &["orders"]).await;
    let mut carol = member(&cluster[2], "carol", &["orders"]).await;
    drain_notices(&mut [&mut alice, &mut bob, &mut carol]).await;

    let message = payload("acked");
    let request = cluster[0]
        .api(reqwest::Method::POST, "/api/broadcast")
        .json(&json!({ "to": { "room": "orders" }, "message": message, "ack": true, "timeoutMs": 1500 }));
    let pending = tokio::spawn(async move { response(request.send().await).await });
    // alice (node 0) and bob (node 1) acknowledge; carol (node 2) stays silent.
    for client in [&mut alice, &mut bob] {
        let got = client.wait_for("cluster_test").await;
        assert_eq!(got["_ack"], true, "{got}");
        let id = got["_messageId"].as_str().expect("_messageId").to_owned();
        let reply = client
            .request(json!({ "type": "ack", "messageId": id }), json!("ack"))
            .await;
        assert_eq!(reply["type"], "reply", "{reply}");
    }
    let got = carol.wait_for("cluster_test").await;
    assert_eq!(got["_ack"], true, "{got}");
    let (status, body) = tokio::time::timeout(Duration::from_secs(6), pending)
        .await
        .expect("the acknowledged broadcast answered")
        .expect("request task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"],
        json!({
            alice.client_id.as_str(): { "success": true },
            bob.client_id.as_str(): { "success": true },
            carol.client_id.as_str(): { "success": false, "error": "timeout" },
        }),
        "one outcome per client, on every node"
    );

    // One client on another node: the same answer shape as on one node.
    let request = cluster[2].api(reqwest::Method::POST, "/api/send").json(
        &json!({ "clientId": bob.client_id, "message": message, "ack": true, "timeoutMs": 3000 }),
    );
    let pending = tokio::spawn(async move { response(request.send().await).await });
    let got = bob.wait_for("cluster_test").await;
    let id = got["_messageId"].as_str().expect("_messageId").to_owned();
    bob.request(json!({ "type": "ack", "messageId": id }), json!("ack2"))
        .await;
    let (status, body) = pending.await.expect("request task");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "results": { bob.client_id.as_str(): { "success": true } } })
    );
    cluster.stop().await;
}

#[tokio::test]
async fn topic_items_published_on_one_node_reach_subscribers_on_another_filtered() {
    let cluster = cluster!(2);
    let mut bob = member(&cluster[1], "bob", &[]).await;
    // bob's other connection, on node 0: the subscription made on node 1 applies to it.
    let mut bob_too = member(&cluster[0], "bob", &[]).await;
    let reply = bob
        .request(
            json!({ "type": "subscribe", "topic": "prices", "keys": ["ACME"] }),
            json!("sub"),
        )
        .await;
    assert_eq!(reply["type"], "reply", "{reply}");
    let (status, body) = cluster[0]
        .post(
            "/api/publish",
            json!({
                "topic": "prices",
                "type": "price",
                "items": [{ "key": "ACME", "price": 1 }, { "key": "INIT", "price": 2 }],
            }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["users"], 1, "one subscribed user: {body}");
    assert_eq!(
        body["delivered"], 2,
        "both its connections, on both nodes: {body}"
    );
    for client in [&mut bob, &mut bob_too] {
        let got = client.wait_for("price").await;
        assert_eq!(got["data"], json!([{ "key": "ACME", "price": 1 }]), "{got}");
        assert_quiet(client).await;
    }
    cluster.stop().await;
}

#[tokio::test]
async fn connections_are_listed_inspected_and_closed_through_any_node() {
    let cluster = cluster!(3);
    let alice = member(&cluster[0], "alice", &[]).await;
    let mut bob = member(&cluster[1], "bob", &["lobby"]).await;
    let carol = member(&cluster[2], "carol", &[]).await;

    let (status, body) = cluster[2].get("/api/connections").await;
    assert_eq!(status, 200, "{body}");
    let mut listed: Vec<&str> = body["items"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| c["clientId"].as_str().expect("clientId"))
        .collect();
    listed.sort_unstable();
    let mut expected = vec![
        alice.client_id.as_str(),
        bob.client_id.as_str(),
        carol.client_id.as_str(),
    ];
    expected.sort_unstable();
    assert_eq!(listed, expected, "every node's connections: {body}");

    // bob's connection, through node 0.
    let path = format!("/api/connections/{}", bob.client_id);
    let (status, info) = cluster[0].get(&path).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["user"]["userId"], "bob", "{info}");
    assert_eq!(info["rooms"], json!(["lobby"]), "{info}");
    let (status, data) = cluster[2]
        .put(&format!("{path}/data"), json!({ "plan": "pro" }))
        .await;
    assert_eq!(status, 200, "{data}");
    let (status, data) = cluster[0].get(&format!("{path}/data")).await;
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["data"], json!({ "plan": "pro" }), "{data}");
    let (status, body) = cluster[0].get("/api/connections/no-such-client").await;
    assert_eq!(status, 404, "{body}");

    let (status, body) = cluster[2].delete(&path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(bob.close_code().await, 4000);

    // Everyone else, through one node.
    let (status, body) = cluster[1].delete("/api/connections").await;
    assert_eq!(status, 200, "{body}");
    for mut client in [alice, carol] {
        assert_eq!(client.close_code().await, 4000);
    }
    cluster.stop().await;
}

#[tokio::test]
async fn notifications_read_marks_and_notices_to_everyone_cross_nodes() {
    let cluster = cluster!(2);
    let mut bob = member(&cluster[1], "bob", &[]).await;
    let mut bob_too = member(&cluster[0], "bob", &[]).await;
    let mut alice = member(&cluster[0], "alice", &[]).await;

    // Sent through node 0 to bob, who has a connection on each node.
    let (status, sent) = cluster[0]
        .post(
            "/api/notify",
            json!({ "userId": "bob", "title": "t", "content": "c" }),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(
        sent["delivered"], 2,
        "both of bob's connections, one per node: {sent}"
    );
    let id = sent["id"].as_str().expect("id").to_owned();
    for client in [&mut bob, &mut bob_too] {
        assert_eq!(client.wait_for("notification").await["id"], id.as_str());
    }
    // Marked read on node 1: bob's connection on node 0 hears it.
    let reply = bob
        .request(
            json!({ "type": "mark_read", "notificationId": id }),
            json!("read"),
        )
        .await;
    assert_eq!(reply["type"], "reply", "{reply}");
    let read = bob_too.wait_for("notification_read").await;
    assert_eq!(read["notificationId"], id.as_str(), "{read}");

    // To everyone, through node 1: every connection on every node, counted.
    let (status, sent) = cluster[1]
        .post(
            "/api/notify_all",
            json!({ "title": "Maintenance", "content": "at 2am" }),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["delivered"], 3, "{sent}");
    for client in [&mut bob, &mut bob_too, &mut alice] {
        let got = client.wait_for("global_notification").await;
        assert_eq!(got["title"], "Maintenance", "{got}");
    }
    cluster.stop().await;
}

#[tokio::test]
async fn the_api_seats_and_unseats_a_connection_through_a_node_that_does_not_hold_it() {
    let cluster = cluster!(3);
    let mut alice = member(&cluster[0], "alice", &["lobby"]).await;
    let mut bob = member(&cluster[1], "bob", &[]).await;
    let mut carol = member(&cluster[2], "carol", &["lobby"]).await;
    drain_notices(&mut [&mut alice, &mut carol]).await;
    let path = format!("/api/rooms/lobby/members/{}", bob.client_id);

    // Through node 2: bob's connection is on node 1.
    let (status, body) = cluster[2].post(&path, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["room"], "lobby", "{body}");
    let list = bob.wait_for("user_list").await;
    assert_eq!(list["room"], "lobby", "{list}");
    let mut users: Vec<&str> = list["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["userId"].as_str())
        .collect();
    users.sort_unstable();
    assert_eq!(
        users,
        ["alice", "bob", "carol"],
        "every node's members: {list}"
    );
    for client in [&mut alice, &mut carol] {
        let join = client.wait_for("user_join").await;
        assert_eq!(join["user"]["userId"], "bob", "{join}");
    }
    // A member now: node 1 hears the room, and bob's chats reach the others.
    alice
        .send(json!({ "type": "chat", "room": "lobby", "content": "in" }))
        .await;
    assert_eq!(bob.wait_for("chat").await["message"], "in");
    bob.send(json!({ "type": "chat", "room": "lobby", "content": "hi" }))
        .await;
    for client in [&mut alice, &mut carol] {
        let chat = client.wait_for("chat").await;
        if chat["message"] == "in" {
            assert_eq!(client.wait_for("chat").await["message"], "hi");
        } else {
            assert_eq!(chat["message"], "hi", "{chat}");
        }
    }
    let (_, info) = cluster[0]
        .get(&format!("/api/connections/{}", bob.client_id))
        .await;
    assert_eq!(info["rooms"], json!(["lobby"]), "{info}");

    // Out again, through node 0: he is told, the others are told, and he hears no more.
    let (status, body) = cluster[0].delete(&path).await;
    assert_eq!(status, 200, "{body}");
    for client in [&mut bob, &mut alice, &mut carol] {
        let leave = client.wait_for("user_leave").await;
        assert_eq!(leave["user"]["userId"], "bob", "{leave}");
        assert_eq!(leave["room"], "lobby", "{leave}");
    }
    alice
        .send(json!({ "type": "chat", "room": "lobby", "content": "out" }))
        .await;
    assert_eq!(carol.wait_for("chat").await["message"], "out");
    // Node 2 has it from the bus, so node 1 would have too.
    bob.expect_silence(Duration::from_millis(300)).await;
    // And a second removal is the owner's refusal, through any node.
    let (status, body) = cluster[2].delete(&path).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "not_member", "{body}");
    cluster.stop().await;
}

#[tokio::test]
async fn rooms_are_listed_inspected_and_deleted_through_any_node() {
    let cluster = cluster!(3);
    let (status, body) = cluster[0]
        .post("/api/rooms", json!({ "name": "hall", "maxClients": 10 }))
        .await;
    assert_eq!(status, 201, "{body}");
    let mut bob = member(&cluster[1], "bob", &["hall"]).await;
    let mut carol = member(&cluster[2], "carol", &["hall"]).await;
    let mut carol_too = member(&cluster[1], "carol", &["hall"]).await;

    let (status, body) = cluster[0].get("/api/rooms").await;
    assert_eq!(status, 200, "{body}");
    let hall = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|r| r["name"] == "hall")
        .unwrap_or_else(|| panic!("hall is listed on a node without members: {body}"))
        .clone();
    assert_eq!(hall["connections"], 3, "{hall}");
    assert_eq!(hall["users"], 2, "carol on two nodes is one user: {hall}");
    assert_eq!(hall["maxClients"], 10, "{hall}");

    let (status, info) = cluster[2].get("/api/rooms/hall").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["clients"].as_array().map(Vec::len), Some(3), "{info}");

    let (status, body) = cluster[0].delete("/api/rooms/hall").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removedMembers"], 3, "{body}");
    for client in [&mut bob, &mut carol, &mut carol_too] {
        let leave = client.wait_for("user_leave").await;
        assert_eq!(leave["room"], "hall", "{leave}");
    }
    let (status, body) = cluster[1].get("/api/rooms/hall").await;
    assert_eq!(status, 404, "gone everywhere: {body}");
    cluster.stop().await;
}
