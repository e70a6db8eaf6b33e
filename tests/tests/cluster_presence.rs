//! Presence and the registries span every node (CONTRACT §10, CLUSTER.md §2.4, §2.5):
//! `user_list` lists the room's users on every node, `user_join` and `user_leave` come
//! once per user however many nodes it is on, `maxClients` and the per-user connection
//! limit count every node, a private message to a user on another node is delivered live
//! once, and a node that goes away has its members reaped with `user_leave` within the
//! TTL plus a heartbeat, except for users who reconnected to another node meanwhile.

use std::time::Duration;

use roomcast_server::Settings;
use roomcast_tests::cluster::Cluster;
use roomcast_tests::{Client, Closed, TestServer};
use serde_json::{Value, json};

macro_rules! cluster {
    ($n:expr) => {
        cluster!($n, Settings::default())
    };
    ($n:expr, $settings:expr) => {
        match Cluster::with($n, $settings).await {
            Some(cluster) => cluster,
            None => return,
        }
    };
}

fn user_ids(list: &Value) -> Vec<String> {
    let mut ids: Vec<String> = list["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["userId"].as_str().expect("userId").to_owned())
        .collect();
    ids.sort();
    ids
}

/// The presence notices (`user_join`, `user_leave`) that arrive within `window`, as
/// `(type, userId)`, failing on anything else.
async fn notices(client: &mut Client, window: Duration) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    while let Some(message) = client.try_recv(window).await {
        let kind = message["type"].as_str().unwrap_or_default().to_owned();
        assert!(
            kind == "user_join" || kind == "user_leave",
            "only presence notices, got {message}"
        );
        seen.push((
            kind,
            message["user"]["userId"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
    }
    seen
}

fn notice(kind: &str, user: &str) -> (String, String) {
    (kind.to_owned(), user.to_owned())
}

async fn member(node: &TestServer, user: &str, room: &str) -> (Client, Value) {
    let mut client = node.login(user).await;
    let list = client.join(room).await;
    (client, list)
}

#[tokio::test]
async fn user_list_shows_the_rooms_users_on_every_node_and_notices_come_once_per_user() {
    let cluster = cluster!(3);
    let (mut watcher, _) = member(&cluster[2], "watcher", "lobby").await;
    let (mut alice, _) = member(&cluster[0], "alice", "lobby").await;
    let (_bob, _) = member(&cluster[1], "bob", "lobby").await;
    // carol on two nodes at the same moment: one user_join. (Either connection may hear
    // of the other before its own reply.)
    let (mut carol_a, mut carol_b) =
        tokio::join!(cluster[0].login("carol"), cluster[1].login("carol"));
    let join = json!({ "type": "join", "room": "lobby", "id": "j" });
    tokio::join!(carol_a.send(join.clone()), carol_b.send(join));
    for carol in [&mut carol_a, &mut carol_b] {
        assert_eq!(carol.wait_for("reply").await["id"], "j");
    }
    let (_dave, list) = member(&cluster[2], "dave", "lobby").await;
    assert_eq!(
        user_ids(&list),
        ["alice", "bob", "carol", "dave", "watcher"],
        "every node's users, each once: {list}"
    );
    assert_eq!(list["count"], 5, "{list}");

    let seen = notices(&mut watcher, Duration::from_millis(500)).await;
    for user in ["alice", "bob", "carol", "dave"] {
        let joins = seen
            .iter()
            .filter(|n| **n == notice("user_join", user))
            .count();
        assert_eq!(joins, 1, "one user_join for {user}: {seen:?}");
    }

    // carol leaves one node: still in the room, no user_leave; then the other: one.
    carol_a
        .send(json!({ "type": "leave", "room": "lobby", "id": "l" }))
        .await;
    assert_eq!(carol_a.wait_for("reply").await["id"], "l");
    assert_eq!(notices(&mut watcher, Duration::from_millis(400)).await, []);
    carol_b
        .send(json!({ "type": "leave", "room": "lobby", "id": "l" }))
        .await;
    assert_eq!(carol_b.wait_for("reply").await["id"], "l");
    assert_eq!(
        notices(&mut watcher, Duration::from_millis(400)).await,
        [notice("user_leave", "carol")]
    );
    let _ = notices(&mut alice, Duration::from_millis(100)).await;
    cluster.stop().await;
}

/// The ids of a `members` page, in the order sent.
fn items(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["userId"].as_str().expect("userId").to_owned())
        .collect()
}

#[tokio::test]
async fn capped_user_list_and_members_pages_merge_every_nodes_users_by_id() {
    let cluster = cluster!(
        2,
        Settings {
            user_list_limit: Some(3),
            ..Settings::default()
        }
    );
    let mut kept = Vec::new();
    let mut distinct = std::collections::BTreeSet::new();
    for (node, user) in [
        (0, "gus"),
        (1, "fay"),
        (0, "eve"),
        (1, "dan"),
        (0, "cy"),
        (1, "cy"),
        (1, "Bea"),
        (0, "ada"),
    ] {
        let (client, list) = member(&cluster[node], user, "hall").await;
        distinct.insert(user);
        // A user already on the other node (cy's second connection) counts once.
        assert_eq!(
            list["count"],
            distinct.len(),
            "{user} on node {node}: {list}"
        );
        kept.push(client);
    }
    let (mut hal, list) = member(&cluster[1], "hal", "hall").await;
    // By id, byte by byte: "Bea" before "ada" (an uppercase letter is a smaller byte).
    let listed: Vec<&str> = list["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| u["userId"].as_str().expect("userId"))
        .collect();
    assert_eq!(
        listed,
        ["Bea", "ada", "cy"],
        "the first 3 by id, of both nodes: {list}"
    );
    assert_eq!(list["count"], 8, "cy once: {list}");

    let everyone = ["Bea", "ada", "cy", "dan", "eve", "fay", "gus", "hal"];
    for (asker, client) in [("node 1", &mut hal), ("node 0", &mut kept[0])] {
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut request = json!({ "type": "members", "room": "hall", "limit": 3 });
            if let Some(after) = &after {
                request["after"] = json!(after);
            }
            let answer = client.request(request, json!("m")).await;
            assert_eq!(answer["type"], "reply", "{answer}");
            let page = &answer["data"];
            assert_eq!(page["count"], 8, "{asker}: {page}");
            ids.extend(items(page));
            match page["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(
            ids, everyone,
            "{asker}: each user once, by id, across nodes"
        );
    }
    cluster.stop().await;
}

#[tokio::test]
async fn max_clients_and_the_per_user_limit_count_every_node() {
    let per_user = Settings {
        max_connections_per_user: Some(2),
        ..Settings::default()
    };
    let cluster = cluster!(3, per_user);
    let (status, body) = cluster[0]
        .post("/api/rooms", json!({ "name": "duo", "maxClients": 2 }))
        .await;
    assert_eq!(status, 201, "{body}");
    let _alice = member(&cluster[1], "alice", "duo").await;
    let _bob = member(&cluster[2], "bob", "duo").await;
    let mut third = cluster[0].login("carol").await;
    let refused = third
        .request(json!({ "type": "join", "room": "duo" }), json!("full"))
        .await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(
        refused["code"], "room_full",
        "the room is full on every node: {refused}"
    );

    // rita: one connection on node 0, one on node 1; the third, on node 2, is over.
    let _first = cluster[0].login("rita").await;
    let _second = cluster[1].login("rita").await;
    let mut over = cluster[2].connect().await;
    over.send(json!({ "type": "auth", "token": cluster[2].token("rita"), "id": "over" }))
        .await;
    let (seen, closed) = over.closed().await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["code"], "limit_exceeded", "{seen:?}");
    assert_eq!(closed, Closed::Code(4009));
    cluster.stop().await;
}

#[tokio::test]
async fn a_private_to_a_user_on_another_node_is_delivered_live_once() {
    let cluster = cluster!(2);
    let mut alice = cluster[0].login("alice").await;
    let mut bob = cluster[1].login("bob").await;
    let sent = alice
        .request(
            json!({ "type": "private", "targetUserId": "bob", "content": "psst" }),
            json!("p"),
        )
        .await;
    assert_eq!(sent["type"], "reply", "{sent}");
    assert_eq!(
        sent["data"]["delivered"], true,
        "bob is online on node 1: {sent}"
    );
    assert_eq!(bob.wait_for("private").await["message"], "psst");
    bob.close().await;
    // Back, on the other node: nothing is delivered again.
    let mut bob = cluster[0].login("bob").await;
    bob.expect_silence(Duration::from_millis(500)).await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_node_that_goes_away_has_its_members_reaped_with_one_leave_except_those_back_elsewhere() {
    let mut cluster = cluster!(2);
    let (mut watcher, _) = member(&cluster[0], "watcher", "lobby").await;
    let (_bob, _) = member(&cluster[1], "bob", "lobby").await;
    let (mut carol, _) = member(&cluster[1], "carol", "lobby").await;
    assert_eq!(
        notices(&mut watcher, Duration::from_millis(400))
            .await
            .len(),
        2
    );

    // Node 1 stops (a deploy). carol comes back on node 0 at once; bob does not.
    let node = cluster.nodes.remove(1);
    let stopping = tokio::spawn(node.stop());
    assert_eq!(carol.close_code().await, 1001);
    let (_carol, list) = member(&cluster[0], "carol", "lobby").await;
    assert!(user_ids(&list).contains(&"carol".to_owned()), "{list}");
    stopping.await.expect("node 1 stopped");

    // Within the TTL (1 s) and a heartbeat: bob leaves, once; carol never did.
    let seen = notices(&mut watcher, Duration::from_millis(2_500)).await;
    assert_eq!(seen, [notice("user_leave", "bob")], "{seen:?}");
    let (status, health) = cluster[0].get("/healthz").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["broker"]["reapedNodes"], 1, "{health}");
    assert_eq!(health["broker"]["nodes"], 1, "{health}");
    let (_late, list) = member(&cluster[0], "late", "lobby").await;
    assert_eq!(user_ids(&list), ["carol", "late", "watcher"], "{list}");
    cluster.stop().await;
}
