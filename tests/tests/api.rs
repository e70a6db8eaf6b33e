//! End-to-end tests of the HTTP API (CONTRACT §9, with §3 and §8): the API key, minted
//! tokens, every broadcast target, direct sends, connections and their data, rooms,
//! health, metrics and stats, and the 400/404/405 answers to bad requests.
//!
//! Every test runs its own server on `127.0.0.1:0` and talks to it over real HTTP and
//! WebSocket connections. "Nothing else arrived" is checked with [`assert_quiet`]: a
//! `ping` with an id whose answer must be the next message. The server queues a delivery
//! before it answers the HTTP request that caused it, so anything that request sent
//! would arrive before that answer.

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::Method;
use roomcast_tests::{Client, TestServer, WAIT, response};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// An application message with a bit of everything JSON has, to check that it arrives
/// exactly as posted.
fn payload(tag: &str) -> Value {
    json!({
        "type": "stock_update",
        "tag": tag,
        "price": 101.25,
        "up": true,
        "tags": ["a", "b"],
        "nested": { "none": null, "list": [1, { "deep": "x" }] },
    })
}

/// Asserts an API error: the status, `error.code` and a non-empty `error.message`.
#[track_caller]
fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "status of {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error.message in {body}"
    );
}

/// A request with the key and a raw (possibly invalid) JSON body.
async fn send_raw(server: &TestServer, method: Method, path: &str, body: &str) -> (u16, Value) {
    response(
        server
            .api(method, path)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await,
    )
    .await
}

/// Splits `"METHOD /path"`, with `{me}` in the path replaced by `me`.
fn route(route: &str, me: &str) -> (Method, String) {
    let (method, path) = route.split_once(' ').expect("METHOD /path");
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    (method, path.replace("{me}", me))
}

/// Posts a broadcast that must succeed; returns its `recipients`.
async fn broadcast(server: &TestServer, to: Value, message: &Value) -> u64 {
    let (status, body) = server
        .post("/api/broadcast", json!({ "to": to, "message": message }))
        .await;
    assert_eq!(status, 200, "{body}");
    body["recipients"]
        .as_u64()
        .unwrap_or_else(|| panic!("no `recipients` in {body}"))
}

/// The next message is the answer to a ping sent now: nothing else was pending. An
/// unauthenticated client answers with `error` `not_authenticated`, which carries the id
/// just the same.
async fn assert_quiet(client: &mut Client) {
    client.send(json!({ "type": "ping", "id": "quiet" })).await;
    let next = client.recv().await;
    assert_eq!(next["id"], "quiet", "expected nothing pending, got {next}");
}

/// `client` gets `message` exactly as posted, and only once.
async fn gets_once(client: &mut Client, message: &Value) {
    let got = client.recv().await;
    assert_eq!(
        &got, message,
        "delivered message differs from the posted one"
    );
    assert_quiet(client).await;
}

/// Polls `check` until it holds, failing after [`WAIT`].
async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET` that must succeed; returns the body.
async fn get_ok(server: &TestServer, path: &str) -> Value {
    let (status, body) = server.get(path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The `items` of a list endpoint.
async fn items(server: &TestServer, path: &str) -> Vec<Value> {
    let body = get_ok(server, path).await;
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no `items` array in {body}"))
        .clone()
}

/// A token minted by `POST /api/token`.
async fn mint(server: &TestServer, body: Value) -> String {
    let (status, answer) = server.post("/api/token", body).await;
    assert_eq!(status, 200, "{answer}");
    answer["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no `token` in {answer}"))
        .to_owned()
}

/// A client authenticated with `token` via the `auth` message, and its `auth_ok`.
async fn login_token(server: &TestServer, token: &str) -> (Client, Value) {
    let mut client = server.connect().await;
    client.send(json!({ "type": "auth", "token": token })).await;
    let ok = client.expect("auth_ok").await;
    client.client_id = ok["clientId"].as_str().expect("clientId").to_owned();
    (client, ok)
}

/// The `/metrics` text, fetched without a key.
async fn metrics(server: &TestServer) -> String {
    let answer = server
        .http(Method::GET, "/metrics")
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(answer.status(), 200);
    let kind = answer.headers()["content-type"]
        .to_str()
        .expect("content-type")
        .to_owned();
    assert!(kind.starts_with("text/plain"), "content-type {kind}");
    answer.text().await.expect("metrics body")
}

/// The value of one series (`name` or `name{labels}`) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Waits until a series has this value.
async fn metric_becomes(server: &TestServer, series: &str, want: f64) {
    eventually(&format!("{series} == {want}"), || async move {
        sample(&metrics(server).await, series) == Some(want)
    })
    .await;
}

/// Waits until `/api/stats` satisfies `check`; returns the stats that did.
async fn stats_until(server: &TestServer, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = get_ok(server, "/api/stats").await;
        if check(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How a request fails to present the key.
#[derive(Debug, Clone, Copy)]
enum BadKey {
    Missing,
    Wrong,
}

impl BadKey {
    const ALL: [BadKey; 2] = [BadKey::Missing, BadKey::Wrong];

    fn request(self, server: &TestServer, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = server.http(method, path);
        match self {
            BadKey::Missing => request,
            BadKey::Wrong => request.bearer_auth(format!("{}-not", server.api_key)),
        }
    }

    /// The error code the contract gives it.
    fn code(self) -> &'static str {
        match self {
            BadKey::Missing => "not_authenticated",
            BadKey::Wrong => "auth_failed",
        }
    }

    async fn send(
        self,
        server: &TestServer,
        method: Method,
        path: &str,
        body: Value,
    ) -> (u16, Value) {
        response(self.request(server, method, path).json(&body).send().await).await
    }
}

// ---------------------------------------------------------------------------------------
// The API key
// ---------------------------------------------------------------------------------------

/// Every route of CONTRACT §9 under `/api`, with a placeholder id where one is needed.
const API_ROUTES: &[&str] = &[
    "POST /api/token",
    "POST /api/send",
    "POST /api/broadcast",
    "POST /api/publish",
    "POST /api/notify",
    "POST /api/notify_all",
    "GET /api/users/u1/notifications?unread=true",
    "GET /api/connections",
    "GET /api/connections?active=true",
    "DELETE /api/connections",
    "GET /api/connections/c1",
    "DELETE /api/connections/c1",
    "GET /api/connections/c1/data",
    "PUT /api/connections/c1/data",
    "POST /api/rooms",
    "GET /api/rooms",
    "GET /api/rooms/r1",
    "DELETE /api/rooms/r1",
    "POST /api/rooms/r1/members/c1",
    "DELETE /api/rooms/r1/members/c1",
    "GET /api/rooms/r1/history?limit=5",
    "GET /api/stats",
    "GET /api/no-such-route",
];

#[tokio::test]
async fn every_api_route_refuses_a_missing_or_wrong_key() {
    let server = TestServer::start().await;
    for name in API_ROUTES {
        let (method, path) = route(name, "c1");
        for key in BadKey::ALL {
            let answer = key.send(&server, method.clone(), &path, json!({})).await;
            assert_eq!(answer.0, 401, "{name} with {key:?} key: {}", answer.1);
            assert_error(&answer, 401, key.code());
        }
    }
    // A scheme other than Bearer presents no API key at all.
    let answer = response(
        server
            .http(Method::GET, "/api/stats")
            .basic_auth("api", Some(&server.api_key))
            .send()
            .await,
    )
    .await;
    assert_error(&answer, 401, "not_authenticated");
    get_ok(&server, "/api/stats").await;
    server.stop().await;
}

#[tokio::test]
async fn a_refused_key_changes_nothing() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let me = alice.client_id.clone();
    for key in BadKey::ALL {
        let attempts = [
            (
                "POST /api/broadcast",
                json!({ "to": { "all": true }, "message": payload("x") }),
            ),
            (
                "POST /api/send",
                json!({ "clientId": me, "message": payload("x") }),
            ),
            ("DELETE /api/connections/{me}", json!({})),
            ("DELETE /api/connections", json!({})),
            ("PUT /api/connections/{me}/data", json!({ "stolen": true })),
            ("POST /api/rooms", json!({ "name": "vault" })),
            ("POST /api/token", json!({ "userId": "mallory" })),
        ];
        for (name, body) in attempts {
            let (method, path) = route(name, &me);
            let answer = key.send(&server, method, &path, body).await;
            assert_error(&answer, 401, key.code());
            assert!(answer.1.get("token").is_none(), "{name}: {}", answer.1);
        }
        // Nothing was delivered and alice is still connected: her ping is answered.
        assert_quiet(&mut alice).await;
    }
    let listed = items(&server, "/api/connections").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["clientId"], me.as_str());
    assert_eq!(listed[0]["data"], Value::Null);
    assert_error(&server.get("/api/rooms/vault").await, 404, "not_found");
    server.stop().await;
}

#[tokio::test]
async fn health_and_metrics_need_no_key() {
    let server = TestServer::start().await;
    let (status, body) = response(server.http(Method::GET, "/healthz").send().await).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["store"], json!({ "connected": true }), "{body}");
    assert_eq!(body["broker"]["kind"], "local", "{body}");
    assert_eq!(body["broker"]["connected"], true, "{body}");
    assert_eq!(body["broker"]["nodes"], 1, "{body}");
    let text = metrics(&server).await;
    assert!(sample(&text, "roomcast_connections").is_some(), "{text}");
    assert_eq!(sample(&text, "roomcast_cluster_nodes"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "roomcast_bus_connected"), Some(1.0), "{text}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_minted_token_authenticates_with_its_claims() {
    let server = TestServer::start().await;
    let token = mint(
        &server,
        json!({
            "userId": "ann",
            "roles": ["admin", "ops"],
            "name": "Ann",
            "info": { "team": "red", "level": 3 },
            "ttlSeconds": 120,
        }),
    )
    .await;
    let (ann, ok) = login_token(&server, &token).await;
    assert_eq!(ok["userId"], "ann");
    assert_eq!(
        ok["user"],
        json!({ "userId": "ann", "name": "Ann", "roles": ["admin", "ops"], "team": "red", "level": 3 })
    );
    // The expiry honours ttlSeconds.
    let info = get_ok(&server, &format!("/api/connections/{}", ann.client_id)).await;
    let expires = info["expiresAt"]
        .as_u64()
        .unwrap_or_else(|| panic!("expiresAt in {info}"));
    let now = roomcast_server::now_ms();
    assert!(
        (now + 100_000..=now + 125_000).contains(&expires),
        "expiresAt {expires} is not about 120 s after {now}"
    );

    // The same token works on the upgrade request, and a bare userId is enough.
    let url = format!("{}?token={token}", server.ws_url());
    let mut by_query = server.connect_url(&url).await;
    assert_eq!(by_query.expect("auth_ok").await["userId"], "ann");
    let bare = mint(&server, json!({ "userId": "bo" })).await;
    let (_bo, ok) = login_token(&server, &bare).await;
    assert_eq!(ok["user"], json!({ "userId": "bo" }));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Broadcast targets
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn broadcast_to_all_reaches_authenticated_clients_only() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut anonymous = server.connect().await;
    let message = payload("all");
    assert_eq!(
        broadcast(&server, json!({ "all": true }), &message).await,
        2
    );
    gets_once(&mut alice, &message).await;
    gets_once(&mut bob, &message).await;
    assert_quiet(&mut anonymous).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_to_a_room_reaches_its_members_only() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    alice.join("desk").await;
    bob.join("desk").await;
    alice.expect("user_join").await;
    let message = payload("room");
    assert_eq!(
        broadcast(&server, json!({ "room": "desk" }), &message).await,
        2
    );
    gets_once(&mut alice, &message).await;
    gets_once(&mut bob, &message).await;
    assert_quiet(&mut carol).await;
    // A room nobody is in is no error, just nobody to deliver to.
    assert_eq!(
        broadcast(&server, json!({ "room": "empty" }), &message).await,
        0
    );
    assert_quiet(&mut alice).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_to_rooms_reaches_each_client_once() {
    let server = TestServer::start().await;
    let mut both = server.login("both").await;
    let mut only_b = server.login("only-b").await;
    let mut neither = server.login("neither").await;
    both.join("room-a").await;
    both.join("room-b").await;
    only_b.join("room-b").await;
    both.expect("user_join").await;
    let message = payload("rooms");
    let to = json!({ "rooms": ["room-a", "room-b"] });
    assert_eq!(broadcast(&server, to, &message).await, 2);
    gets_once(&mut both, &message).await;
    gets_once(&mut only_b, &message).await;
    assert_quiet(&mut neither).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_to_a_client_reaches_that_connection_only() {
    let server = TestServer::start().await;
    let mut first = server.login("sam").await;
    let mut second = server.login("sam").await;
    let message = payload("client");
    let to = json!({ "client": second.client_id });
    assert_eq!(broadcast(&server, to, &message).await, 1);
    gets_once(&mut second, &message).await;
    assert_quiet(&mut first).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_to_a_user_reaches_all_its_connections() {
    let server = TestServer::start().await;
    let mut phone = server.login("uma").await;
    let mut laptop = server.login("uma").await;
    let mut other = server.login("vic").await;
    let message = payload("user");
    assert_eq!(
        broadcast(&server, json!({ "user": "uma" }), &message).await,
        2
    );
    gets_once(&mut phone, &message).await;
    gets_once(&mut laptop, &message).await;
    assert_quiet(&mut other).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_to_users_reaches_each_of_their_connections_once() {
    let server = TestServer::start().await;
    let mut uma_1 = server.login("uma").await;
    let mut uma_2 = server.login("uma").await;
    let mut vic = server.login("vic").await;
    let mut wes = server.login("wes").await;
    let message = payload("users");
    // A repeated user and one with no connection change nothing.
    let to = json!({ "users": ["uma", "vic", "uma", "ghost"] });
    assert_eq!(broadcast(&server, to, &message).await, 3);
    gets_once(&mut uma_1, &message).await;
    gets_once(&mut uma_2, &message).await;
    gets_once(&mut vic, &message).await;
    assert_quiet(&mut wes).await;
    server.stop().await;
}

#[tokio::test]
async fn broadcast_to_a_role_reaches_users_whose_token_has_it() {
    let server = TestServer::start().await;
    let mut admin = server
        .login_with(json!({ "sub": "ada", "roles": ["admin", "ops"] }))
        .await;
    let mut ops = server
        .login_with(json!({ "sub": "oz", "roles": ["ops"] }))
        .await;
    let mut plain = server.login("pat").await;
    let token = mint(&server, json!({ "userId": "max", "roles": ["admin"] })).await;
    let (mut minted, _) = login_token(&server, &token).await;

    let message = payload("admins");
    assert_eq!(
        broadcast(&server, json!({ "role": "admin" }), &message).await,
        2
    );
    gets_once(&mut admin, &message).await;
    gets_once(&mut minted, &message).await;
    assert_quiet(&mut ops).await;
    assert_quiet(&mut plain).await;

    let message = payload("ops");
    assert_eq!(
        broadcast(&server, json!({ "role": "ops" }), &message).await,
        2
    );
    gets_once(&mut admin, &message).await;
    gets_once(&mut ops, &message).await;
    assert_quiet(&mut minted).await;
    assert_quiet(&mut plain).await;
    server.stop().await;
}

/// `batch` is refused with any target but a room (see the bad bodies); with a room it is
/// accepted and the members get the message inside `batch_messages` (CONTRACT §5, §9).
#[tokio::test]
async fn batch_broadcast_to_a_room_arrives_as_batch_messages() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.join("ticker").await;
    let message = payload("batched");
    let (status, body) = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "ticker" }, "message": message, "batch": true }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let batch = alice.expect("batch_messages").await;
    assert_eq!(batch["room"], "ticker");
    assert_eq!(batch["messages"], json!([message]));
    assert_eq!(batch["count"], 1);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Direct sends
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn send_reaches_only_that_client_and_unknown_ids_are_404() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut alice_too = server.login("alice").await;
    let message = payload("direct");
    let (status, body) = server
        .post(
            "/api/send",
            json!({ "clientId": alice.client_id, "message": message }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    gets_once(&mut alice, &message).await;
    assert_quiet(&mut alice_too).await;

    for unknown in ["no-such-client", "not a valid id!"] {
        let answer = server
            .post(
                "/api/send",
                json!({ "clientId": unknown, "message": message }),
            )
            .await;
        assert_error(&answer, 404, "not_found");
    }
    // Once a client is gone, its id is unknown too.
    let gone = alice_too.client_id.clone();
    alice_too.close().await;
    let s = &server;
    eventually("a closed client's id is unknown", || {
        let body = json!({ "clientId": gone, "message": message });
        async move { s.post("/api/send", body).await.0 == 404 }
    })
    .await;
    assert_quiet(&mut alice).await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn connections_list_every_socket_and_active_ones_only_authenticated() {
    let server = TestServer::start().await;
    let mut alice = server
        .login_with(json!({ "sub": "alice", "name": "Alice" }))
        .await;
    alice.join("desk").await;
    let _anonymous = server.connect().await;
    let s = &server;
    eventually("both sockets are listed", || async move {
        items(s, "/api/connections").await.len() == 2
    })
    .await;

    let all = items(&server, "/api/connections").await;
    let mine = all
        .iter()
        .find(|c| c["clientId"] == alice.client_id.as_str())
        .unwrap_or_else(|| panic!("alice not in {all:?}"));
    assert_eq!(mine["authenticated"], true, "{mine}");
    assert_eq!(mine["user"], json!({ "userId": "alice", "name": "Alice" }));
    assert_eq!(mine["rooms"], json!(["desk"]));
    assert_eq!(mine["data"], Value::Null);
    let connected_at = mine["connectedAt"].as_u64().unwrap_or(0);
    assert!(
        connected_at > 0 && connected_at <= roomcast_server::now_ms(),
        "connectedAt in {mine}"
    );
    let other = all
        .iter()
        .find(|c| c["clientId"] != alice.client_id.as_str())
        .expect("the unauthenticated socket");
    assert_eq!(other["authenticated"], false, "{other}");
    assert_eq!(other["user"], Value::Null, "{other}");
    assert_eq!(other["rooms"], json!([]), "{other}");

    let active = items(&server, "/api/connections?active=true").await;
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0]["clientId"], alice.client_id.as_str());

    let info = get_ok(&server, &format!("/api/connections/{}", alice.client_id)).await;
    for field in [
        "clientId",
        "user",
        "authenticated",
        "rooms",
        "data",
        "connectedAt",
    ] {
        assert_eq!(info[field], mine[field], "{field} of {info}");
    }
    let other_id = other["clientId"].as_str().expect("clientId");
    let info = get_ok(&server, &format!("/api/connections/{other_id}")).await;
    assert_eq!(info["authenticated"], false, "{info}");
    assert_error(
        &server.get("/api/connections/no-such-client").await,
        404,
        "not_found",
    );
    server.stop().await;
}

#[tokio::test]
async fn deleting_a_connection_closes_it_with_4000_and_no_other() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let path = format!("/api/connections/{}", alice.client_id);
    let (status, body) = server.delete(&path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(alice.close_code().await, 4000);
    assert_quiet(&mut bob).await;
    let s = &server;
    eventually("alice is gone from the list", || async move {
        items(s, "/api/connections").await.len() == 1
    })
    .await;
    let listed = items(&server, "/api/connections").await;
    assert_eq!(listed[0]["clientId"], bob.client_id.as_str());
    assert_error(&server.delete(&path).await, 404, "not_found");
    assert_error(
        &server.delete("/api/connections/no-such-client").await,
        404,
        "not_found",
    );
    assert_quiet(&mut bob).await;
    server.stop().await;
}

#[tokio::test]
async fn deleting_all_connections_closes_every_client_with_4000() {
    let server = TestServer::start().await;
    let mut clients = vec![
        server.login("alice").await,
        server.login("bob").await,
        server.connect().await,
    ];
    let s = &server;
    eventually("three sockets are listed", || async move {
        items(s, "/api/connections").await.len() == 3
    })
    .await;
    let (status, body) = server.delete("/api/connections").await;
    assert_eq!(status, 200, "{body}");
    for client in &mut clients {
        assert_eq!(client.close_code().await, 4000);
    }
    eventually("no socket is listed", || async move {
        items(s, "/api/connections").await.is_empty()
    })
    .await;
    // The server still accepts new clients.
    let mut late = server.login("late").await;
    assert_quiet(&mut late).await;
    server.stop().await;
}

#[tokio::test]
async fn connection_data_round_trips_any_json() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let data_path = format!("/api/connections/{}/data", alice.client_id);
    assert_eq!(get_ok(&server, &data_path).await, json!({ "data": null }));
    let values = [
        json!({ "plan": "pro", "limits": [1, 2], "meta": { "since": 2024 } }),
        json!("just text"),
        json!(42),
        json!([true, null, "x"]),
    ];
    for value in values {
        let (status, body) = server.put(&data_path, value.clone()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(get_ok(&server, &data_path).await, json!({ "data": value }));
        let info = get_ok(&server, &format!("/api/connections/{}", alice.client_id)).await;
        assert_eq!(info["data"], value, "{info}");
    }
    let listed = items(&server, "/api/connections").await;
    assert_eq!(listed[0]["data"], json!([true, null, "x"]));
    // Setting data is invisible to the client itself.
    assert_quiet(&mut alice).await;

    let unknown = "/api/connections/no-such-client/data";
    assert_error(&server.get(unknown).await, 404, "not_found");
    assert_error(
        &server.put(unknown, json!({ "a": 1 })).await,
        404,
        "not_found",
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Rooms
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn rooms_are_created_updated_listed_and_deleted() {
    let server = TestServer::start().await;
    let options = json!({
        "name": "news",
        "maxClients": 3,
        "persistent": true,
        "roles": ["staff"],
        "presence": false,
    });
    let (status, room) = server.post("/api/rooms", options).await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["name"], "news");
    assert_eq!(room["maxClients"], 3);
    assert_eq!(room["persistent"], true);
    assert_eq!(room["roles"], json!(["staff"]));
    assert_eq!(room["presence"], false);

    let (status, room) = server
        .post(
            "/api/rooms",
            json!({ "name": "news", "maxClients": 5, "roles": ["staff"] }),
        )
        .await;
    assert_eq!(status, 200, "posting again updates: {room}");
    assert_eq!(room["name"], "news");
    assert_eq!(room["maxClients"], 5);

    let listed = items(&server, "/api/rooms").await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "news");
    assert_eq!(listed[0]["maxClients"], 5);

    let info = get_ok(&server, "/api/rooms/news").await;
    assert_eq!(info["name"], "news");
    assert_eq!(info["clients"], json!([]), "{info}");
    let mut staff = server
        .login_with(json!({ "sub": "sue", "roles": ["staff"] }))
        .await;
    staff.join("news").await;
    let info = get_ok(&server, "/api/rooms/news").await;
    let clients = info["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 1, "{info}");
    assert_eq!(clients[0]["clientId"], staff.client_id.as_str());

    assert_error(&server.get("/api/rooms/ghost").await, 404, "not_found");
    let (status, body) = server.delete("/api/rooms/news").await;
    assert_eq!(status, 200, "{body}");
    assert_error(&server.get("/api/rooms/news").await, 404, "not_found");
    assert_error(&server.delete("/api/rooms/news").await, 404, "not_found");
    assert!(items(&server, "/api/rooms").await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn room_names_in_paths_are_percent_decoded() {
    let server = TestServer::start().await;
    let (status, room) = server
        .post("/api/rooms", json!({ "name": "town hall" }))
        .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(
        get_ok(&server, "/api/rooms/town%20hall").await["name"],
        "town hall"
    );
    let (status, body) = server.delete("/api/rooms/town%20hall").await;
    assert_eq!(status, 200, "{body}");
    assert_error(
        &server.get("/api/rooms/town%20hall").await,
        404,
        "not_found",
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Health, metrics, stats
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_follow_connections_messages_and_errors() {
    let server = TestServer::start().await;
    let text = metrics(&server).await;
    assert_eq!(sample(&text, "roomcast_connections"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "roomcast_queue_drops_total"),
        Some(0.0),
        "{text}"
    );
    let messages_before = sample(&text, "roomcast_messages_in_total").expect("messages_in");

    let mut alice = server.login("alice").await;
    let _anonymous = server.connect().await;
    metric_becomes(&server, "roomcast_connections", 2.0).await;
    let s = &server;
    eventually("messages_in grows", || async move {
        sample(&metrics(s).await, "roomcast_messages_in_total").is_some_and(|n| n > messages_before)
    })
    .await;

    alice.send_text("{ not json").await;
    assert_eq!(alice.expect("error").await["code"], "bad_request");
    metric_becomes(&server, r#"roomcast_errors_total{code="bad_request"}"#, 1.0).await;

    alice.close().await;
    metric_becomes(&server, "roomcast_connections", 1.0).await;
    server.stop().await;
}

#[tokio::test]
async fn stats_count_connections_rooms_and_traffic() {
    let server = TestServer::start().await;
    let stats = get_ok(&server, "/api/stats").await;
    for field in [
        "connections",
        "authenticated",
        "rooms",
        "messagesIn",
        "messagesOut",
        "bytesIn",
        "bytesOut",
    ] {
        assert!(stats[field].is_u64(), "{field} in {stats}");
    }
    assert_eq!(stats["connections"], 0);

    let mut alice = server.login("alice").await;
    alice.join("desk").await;
    let _anonymous = server.connect().await;
    let stats = stats_until(&server, "stats see both sockets", |s| {
        s["connections"] == 2
            && s["messagesOut"].as_u64().unwrap_or(0) >= 3
            && s["bytesOut"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(stats["authenticated"], 1, "{stats}");
    assert_eq!(stats["rooms"], 1, "{stats}");
    // auth and join came in; auth_ok, user_list and the join reply went out.
    assert!(stats["messagesIn"].as_u64().unwrap_or(0) >= 2, "{stats}");
    assert!(stats["bytesIn"].as_u64().unwrap_or(0) > 0, "{stats}");

    let before = stats["messagesIn"].as_u64().unwrap_or(0);
    assert_quiet(&mut alice).await;
    stats_until(&server, "messagesIn grows", |s| {
        s["messagesIn"].as_u64().unwrap_or(0) > before
    })
    .await;
    alice.close().await;
    stats_until(&server, "alice is no longer counted", |s| {
        s["connections"] == 1 && s["authenticated"] == 0
    })
    .await;
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Bad requests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let server = TestServer::start().await;
    for path in [
        "/api/no-such-route",
        "/api/connections/c1/data/extra",
        "/api/rooms/a/b",
    ] {
        assert_error(&server.get(path).await, 404, "not_found");
    }
    for name in [
        "PATCH /api/rooms",
        "PUT /api/token",
        "GET /api/broadcast",
        "POST /api/stats",
    ] {
        let (method, path) = route(name, "");
        let (status, body) = send_raw(&server, method, &path, "{}").await;
        assert_eq!(status, 405, "{name}: {body}");
        assert!(body["error"]["code"].is_string(), "{name}: {body}");
    }
    get_ok(&server, "/api/stats").await;
    server.stop().await;
}

/// Bodies every endpoint must refuse with 400 `bad_request`, by `"METHOD path"`.
/// `{me}` stands for a connected client's id, so that a body wrongly accepted would
/// deliver something to it or change its data.
const BAD_BODIES: &[(&str, &[&str])] = &[
    (
        "POST /api/token",
        &[
            r#"{}"#,
            r#"{"userId":""}"#,
            r#"{"userId":7}"#,
            r#"{"userId":"a","admin":true}"#,
            r#"{"userId":"a","ttlSeconds":0}"#,
            r#"{"userId":"a","ttlSeconds":-5}"#,
            r#"{"userId":"a","roles":"admin"}"#,
            r#"{"userId":"a","info":[1]}"#,
            "not json",
        ],
    ),
    (
        "POST /api/broadcast",
        &[
            // `to` with zero, two, unknown or empty keys
            r#"{"to":{},"message":{"type":"t"}}"#,
            r#"{"to":{"all":true,"client":"{me}"},"message":{"type":"t"}}"#,
            r#"{"to":{"all":false},"message":{"type":"t"}}"#,
            r#"{"to":{"everyone":true},"message":{"type":"t"}}"#,
            r#"{"to":"all","message":{"type":"t"}}"#,
            r#"{"to":{"room":""},"message":{"type":"t"}}"#,
            r#"{"to":{"rooms":["desk",""]},"message":{"type":"t"}}"#,
            r#"{"to":{"role":""},"message":{"type":"t"}}"#,
            // a message that is not an object with a string `type`
            r#"{"to":{"client":"{me}"},"message":{"text":"no type"}}"#,
            r#"{"to":{"client":"{me}"},"message":{"type":7}}"#,
            r#"{"to":{"client":"{me}"},"message":"hello"}"#,
            r#"{"to":{"client":"{me}"},"message":["type","t"]}"#,
            // `batch` with a target that is not one room
            r#"{"to":{"all":true},"message":{"type":"t"},"batch":true}"#,
            r#"{"to":{"client":"{me}"},"message":{"type":"t"},"batch":true}"#,
            r#"{"to":{"user":"alice"},"message":{"type":"t"},"batch":true}"#,
            r#"{"to":{"rooms":["desk"]},"message":{"type":"t"},"batch":true}"#,
            // unknown or missing fields, broken JSON
            r#"{"to":{"all":true},"message":{"type":"t"},"priority":1}"#,
            r#"{"message":{"type":"t"}}"#,
            r#"{"to":{"all":true}}"#,
            r#"{"to":{"all":true},"#,
        ],
    ),
    (
        "POST /api/send",
        &[
            r#"{"clientId":"{me}"}"#,
            r#"{"clientId":"{me}","message":{"text":"no type"}}"#,
            r#"{"clientId":"{me}","message":[1]}"#,
            r#"{"clientId":"{me}","message":{"type":"t"},"extra":1}"#,
            r#"{"message":{"type":"t"}}"#,
            "[]",
        ],
    ),
    (
        "POST /api/rooms",
        &[
            r#"{"name":"desk","maxClients":0}"#,
            r#"{"name":"desk","maxClients":-1}"#,
            r#"{"name":""}"#,
            r#"{"name":"desk","colour":"red"}"#,
            r#"{"maxClients":3}"#,
            r#"{"name":"desk","presence":"yes"}"#,
            "nope",
        ],
    ),
    (
        "PUT /api/connections/{me}/data",
        &[r#"{"unclosed":"#, "not json"],
    ),
];

#[tokio::test]
async fn bad_bodies_are_400_and_change_nothing() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.join("desk").await;
    let me = alice.client_id.clone();
    // Every row is tried, and every wrong answer reported at once.
    let mut wrong = Vec::new();
    for &(name, bodies) in BAD_BODIES {
        let (method, path) = route(name, &me);
        for body in bodies {
            let body = body.replace("{me}", &me);
            let (status, answer) = send_raw(&server, method.clone(), &path, &body).await;
            let message = answer["error"]["message"].as_str().unwrap_or("");
            if status != 400 || answer["error"]["code"] != "bad_request" || message.is_empty() {
                wrong.push(format!("{name} {body} -> {status} {answer}"));
            }
            // The server keeps serving.
            get_ok(&server, "/api/stats").await;
        }
    }
    assert!(
        wrong.is_empty(),
        "not a 400 bad_request:\n{}",
        wrong.join("\n")
    );
    assert_quiet(&mut alice).await;
    let info = get_ok(&server, &format!("/api/connections/{me}")).await;
    assert_eq!(info["data"], Value::Null, "{info}");
    let rooms = items(&server, "/api/rooms").await;
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    assert_eq!(rooms[0]["maxClients"], Value::Null, "{rooms:?}");
    // And a good request after all of them works.
    let message = payload("after");
    assert_eq!(
        broadcast(&server, json!({ "room": "desk" }), &message).await,
        1
    );
    gets_once(&mut alice, &message).await;
    server.stop().await;
}

/// A POST with no body at all (hence no `Content-Length`) is a bad body like any other.
#[tokio::test]
async fn a_post_without_a_body_is_400() {
    let server = TestServer::start().await;
    for path in ["/api/token", "/api/broadcast", "/api/send", "/api/rooms"] {
        let answer = response(server.api(Method::POST, path).send().await).await;
        assert_eq!(answer.0, 400, "POST {path} without a body: {}", answer.1);
        assert_error(&answer, 400, "bad_request");
    }
    get_ok(&server, "/api/stats").await;
    server.stop().await;
}
