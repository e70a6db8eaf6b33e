//! The fan-out seam (issue 10): every delivery of every kind passes the `Broker`, so a
//! cluster broker that carries what the seam carries reaches every node. A recording
//! broker wraps the single-node one; every API route and every client message that fans
//! out is driven through it, and every frame a client receives must be either the
//! answer to its own request (`reply`, `error`, `pong`, its `auth_ok`, the `user_list`
//! of its join, the heartbeat `ping`) or a frame the broker carried (or one a
//! connection request the broker carried made: a member removed by the API hears its
//! own `user_leave`). A side door that reaches a connection directly fails this test.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use roomcast_server::ServerError;
use roomcast_server::Settings;
use roomcast_server::broker::{
    AckRequest, AckResults, Broker, Delivery, Frame, LocalBroker, LocalSide, NodeAnswer,
    NodeRequest, Reach,
};
use roomcast_tests::{Client, TestServer};
use serde_json::{Value, json};

/// What crossed the seam.
#[derive(Debug, Default)]
struct Log {
    /// Every whole frame published (plain or acknowledged), parsed.
    frames: Vec<Value>,
    /// Every topic publish: (type, topic, items).
    topics: Vec<(String, String, Vec<Value>)>,
    /// Every connection request.
    requests: Vec<NodeRequest>,
}

/// The single-node broker, recording everything it is handed.
#[derive(Debug, Default)]
struct RecordingBroker {
    inner: LocalBroker,
    log: Mutex<Log>,
}

impl RecordingBroker {
    fn record(&self, delivery: &Delivery) {
        let mut log = self.log.lock().unwrap();
        match &delivery.frame {
            Frame::Whole(text) => log
                .frames
                .push(serde_json::from_str(text.as_str()).expect("a published frame is JSON")),
            Frame::Topic(items) => log.topics.push((
                items.kind.clone(),
                items.topic.clone(),
                items
                    .items
                    .iter()
                    .map(|(_, raw)| serde_json::from_str(raw).expect("items are JSON"))
                    .collect(),
            )),
        }
    }

    fn carried(&self, frame: &Value) -> bool {
        let log = self.log.lock().unwrap();
        if log.frames.contains(frame) {
            return true;
        }
        // A topic frame is built per subscriber on the receiving side: it must be a
        // selection of a publish the broker carried.
        log.topics.iter().any(|(kind, topic, items)| {
            frame["type"] == kind.as_str()
                && frame["topic"] == topic.as_str()
                && frame["data"]
                    .as_array()
                    .is_some_and(|data| !data.is_empty() && data.iter().all(|d| items.contains(d)))
        })
    }

    /// Whether a request removed `client` from `room` (so it may hear its own leave).
    fn removed(&self, client: &str, room: &str) -> bool {
        self.log.lock().unwrap().requests.iter().any(|r| match r {
            NodeRequest::RemoveMember(c, r) => c.as_str() == client && r.as_str() == room,
            NodeRequest::ClearRoom(r) => r.as_str() == room,
            _ => false,
        })
    }

    fn requested(&self, check: impl Fn(&NodeRequest) -> bool) -> bool {
        self.log.lock().unwrap().requests.iter().any(check)
    }
}

impl Broker for RecordingBroker {
    fn start(&self, local: Arc<dyn LocalSide>) -> BoxFuture<'_, Result<(), ServerError>> {
        self.inner.start(local)
    }

    fn publish(&self, delivery: Delivery) -> BoxFuture<'_, Result<Reach, ServerError>> {
        self.record(&delivery);
        self.inner.publish(delivery)
    }

    fn publish_with_ack(
        &self,
        delivery: Delivery,
        ack: AckRequest,
    ) -> BoxFuture<'_, Result<AckResults, ServerError>> {
        self.record(&delivery);
        self.inner.publish_with_ack(delivery, ack)
    }

    fn request(&self, request: NodeRequest) -> BoxFuture<'_, Result<NodeAnswer, ServerError>> {
        self.log.lock().unwrap().requests.push(request.clone());
        self.inner.request(request)
    }
}

/// A client under watch: everything it receives is checked against the seam.
struct Watched {
    client: Client,
    user: &'static str,
    /// Message types it received, to prove the scenario covered them.
    seen: HashSet<String>,
}

/// Frames every connection may get without the broker: answers to its own requests.
const DIRECT: &[&str] = &["reply", "error", "pong", "ping", "auth_ok", "user_list"];

impl Watched {
    async fn login(server: &TestServer, user: &'static str, roles: &[&str]) -> Self {
        let client = server
            .login_with(json!({ "sub": user, "roles": roles }))
            .await;
        Self {
            client,
            user,
            seen: HashSet::new(),
        }
    }

    /// Reads until the connection is quiet and checks every frame; returns them.
    async fn settle(&mut self, broker: &RecordingBroker) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(frame) = self.client.try_recv(Duration::from_millis(250)).await {
            let kind = frame["type"].as_str().unwrap_or_default().to_owned();
            let own_leave = kind == "user_leave"
                && frame["user"]["userId"] == self.user
                && broker.removed(&self.client.client_id, frame["room"].as_str().unwrap_or(""));
            assert!(
                DIRECT.contains(&kind.as_str()) || own_leave || broker.carried(&frame),
                "{} got a frame that did not pass the broker: {frame}",
                self.user
            );
            self.seen.insert(kind);
            frames.push(frame);
        }
        frames
    }

    async fn send(&mut self, message: Value) {
        self.client.send(message).await;
    }
}

async fn settle_all(clients: &mut [&mut Watched], broker: &RecordingBroker) {
    for client in clients.iter_mut() {
        client.settle(broker).await;
    }
}

#[tokio::test]
async fn every_delivery_of_every_route_and_message_passes_the_broker() {
    let broker = Arc::new(RecordingBroker::default());
    let server = TestServer::with_broker(
        Settings {
            stats_interval_ms: Some(1000),
            batch_window_ms: Some(50),
            // Every login joins it: the join at admission announces through the broker too.
            default_rooms: Some(vec!["hall".to_owned()]),
            ..Settings::default()
        },
        broker.clone(),
    )
    .await;
    let mut alice = Watched::login(&server, "alice", &["admin"]).await;
    let mut bob = Watched::login(&server, "bob", &[]).await;
    let mut carol = Watched::login(&server, "carol", &[]).await;
    let (a, b, c) = (
        alice.client.client_id.clone(),
        bob.client.client_id.clone(),
        carol.client.client_id.clone(),
    );

    // Client messages that fan out: join (user_join), chat, private, subscribe + a
    // topic publish, mark_read, leave (user_leave).
    alice
        .send(json!({ "type": "join", "room": "lobby", "id": 1 }))
        .await;
    bob.send(json!({ "type": "join", "room": "lobby", "id": 1 }))
        .await;
    settle_all(&mut [&mut alice, &mut bob], &broker).await;
    bob.send(json!({ "type": "chat", "room": "lobby", "content": "hi", "id": 2 }))
        .await;
    bob.send(json!({ "type": "private", "targetUserId": "carol", "content": "psst", "id": 3 }))
        .await;
    // One for a user with no connection: it waits in the store and comes at its connect.
    bob.send(json!({ "type": "private", "targetUserId": "dave", "content": "later", "id": 8 }))
        .await;
    carol
        .send(json!({ "type": "subscribe", "topic": "stocks", "keys": ["AAPL"], "id": 4 }))
        .await;
    settle_all(&mut [&mut alice, &mut bob, &mut carol], &broker).await;

    // API routes that fan out.
    let items = json!([{ "key": "AAPL", "price": 1 }, { "key": "MSFT", "price": 2 }]);
    let (status, _) = server
        .post(
            "/api/publish",
            json!({ "topic": "stocks", "type": "stock_update", "items": items }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, notified) = server
        .post(
            "/api/notify",
            json!({ "userId": "carol", "title": "t", "content": "c" }),
        )
        .await;
    assert_eq!(status, 200, "{notified}");
    server
        .post(
            "/api/notify_all",
            json!({ "title": "all", "content": "everyone" }),
        )
        .await;
    for to in [
        json!({ "all": true }),
        json!({ "room": "lobby" }),
        json!({ "rooms": ["lobby", "nowhere"] }),
        json!({ "user": "bob" }),
        json!({ "users": ["bob", "carol"] }),
        json!({ "role": "admin" }),
    ] {
        let message = json!({ "type": "alert", "to": to.clone() });
        let (status, body) = server
            .post("/api/broadcast", json!({ "to": to, "message": message }))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, _) = server
        .post(
            "/api/send",
            json!({ "clientId": c, "message": { "type": "direct" } }),
        )
        .await;
    assert_eq!(status, 200);
    server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "lobby" }, "message": { "type": "tick" }, "batch": true }),
        )
        .await;
    let carol_frames = carol.settle(&broker).await;
    let notification = carol_frames
        .iter()
        .find(|f| f["type"] == "notification")
        .expect("carol got the notification");
    carol
        .send(json!({ "type": "mark_read", "notificationId": notification["id"], "id": 5 }))
        .await;
    settle_all(&mut [&mut alice, &mut bob, &mut carol], &broker).await;

    // Acknowledged deliveries: the one client of /api/send, every member of a room.
    let acked = {
        let api = server.post(
            "/api/send",
            json!({ "clientId": c, "message": { "type": "confirm" }, "ack": true, "timeoutMs": 3000 }),
        );
        let answer = async {
            let frame = carol.client.wait_for("confirm").await;
            assert!(
                broker.carried(&frame),
                "an acked frame passed the broker: {frame}"
            );
            carol
                .send(json!({ "type": "ack", "messageId": frame["_messageId"] }))
                .await;
        };
        let ((status, body), ()) = tokio::join!(api, answer);
        assert_eq!(status, 200, "{body}");
        body
    };
    assert_eq!(acked["results"][&c]["success"], true, "{acked}");
    let (status, body) = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "lobby" }, "message": { "type": "poll" }, "ack": true, "timeoutMs": 300 }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"].as_object().map(|r| r.len()),
        Some(2),
        "{body}"
    );

    // Connection operations are requests through the broker.
    let (status, list) = server.get("/api/connections").await;
    assert_eq!(
        (status, list["items"].as_array().map(Vec::len)),
        (200, Some(3))
    );
    assert_eq!(server.get(&format!("/api/connections/{b}")).await.0, 200);
    assert_eq!(
        server
            .put(
                &format!("/api/connections/{b}/data"),
                json!({ "team": "red" })
            )
            .await
            .0,
        200
    );
    assert_eq!(
        server.get(&format!("/api/connections/{b}/data")).await.0,
        200
    );
    let (status, body) = server
        .post(&format!("/api/rooms/lobby/members/{c}"), json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    settle_all(&mut [&mut alice, &mut bob, &mut carol], &broker).await;
    assert_eq!(
        server
            .delete(&format!("/api/rooms/lobby/members/{c}"))
            .await
            .0,
        200
    );
    settle_all(&mut [&mut alice, &mut bob, &mut carol], &broker).await;
    server.post("/api/rooms", json!({ "name": "temp" })).await;
    carol
        .send(json!({ "type": "join", "room": "temp", "id": 6 }))
        .await;
    alice
        .send(json!({ "type": "join", "room": "temp", "id": 6 }))
        .await;
    settle_all(&mut [&mut alice, &mut carol], &broker).await;
    assert_eq!(server.delete("/api/rooms/temp").await.0, 200);
    bob.send(json!({ "type": "leave", "room": "lobby", "id": 7 }))
        .await;
    // Long enough for a stats_update to the admin.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    settle_all(&mut [&mut alice, &mut bob, &mut carol], &broker).await;
    // A user connecting late gets what waited for it: the frame the broker carried then.
    let mut dave = Watched::login(&server, "dave", &[]).await;
    let pending = dave.settle(&broker).await;
    assert!(
        pending
            .iter()
            .any(|f| f["type"] == "private" && f["message"] == "later"),
        "{pending:?}"
    );
    dave.client.close().await;
    assert_eq!(server.delete(&format!("/api/connections/{b}")).await.0, 200);
    assert_eq!(bob.client.close_code().await, 4000);
    // Closing leaves every room: the default room's others hear it through the broker.
    settle_all(&mut [&mut alice, &mut carol], &broker).await;
    assert_eq!(server.delete("/api/connections").await.0, 200);
    assert_eq!(alice.client.close_code().await, 4000);
    assert_eq!(carol.client.close_code().await, 4000);

    // The scenario reached every kind of delivery, so the checks above covered them.
    let seen: HashSet<String> = [&alice, &bob, &carol]
        .iter()
        .flat_map(|w| w.seen.iter().cloned())
        .collect();
    for kind in [
        "user_join",
        "user_leave",
        "chat",
        "private",
        "stock_update",
        "notification",
        "notification_read",
        "global_notification",
        "alert",
        "direct",
        "batch_messages",
        "poll",
        "stats_update",
    ] {
        assert!(seen.contains(kind), "no {kind} was delivered: {seen:?}");
    }
    for (what, found) in [
        (
            "list",
            broker.requested(|r| matches!(r, NodeRequest::List { .. })),
        ),
        (
            "info",
            broker.requested(|r| matches!(r, NodeRequest::Info(id) if id.as_str() == b)),
        ),
        (
            "get data",
            broker.requested(|r| matches!(r, NodeRequest::GetData(_))),
        ),
        (
            "set data",
            broker.requested(|r| matches!(r, NodeRequest::SetData(..))),
        ),
        (
            "add member",
            broker.requested(|r| matches!(r, NodeRequest::AddMember(..))),
        ),
        (
            "remove member",
            broker.requested(|r| matches!(r, NodeRequest::RemoveMember(..))),
        ),
        (
            "clear room",
            broker.requested(|r| matches!(r, NodeRequest::ClearRoom(_))),
        ),
        (
            "disconnect",
            broker.requested(|r| matches!(r, NodeRequest::Disconnect(_))),
        ),
        (
            "disconnect all",
            broker.requested(|r| matches!(r, NodeRequest::DisconnectAll)),
        ),
    ] {
        assert!(found, "no {what} request passed the broker");
    }
    let _ = a;
    server.stop().await;
}
