//! What the demo page stands on, through HTTP and the wire: the dev-only routes (tokens,
//! the caller's notifications, the admin proxy), `stats_update` pushed to admins, and the
//! demo feed of stock ticks and game scores.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use roomcast_server::Settings;
use roomcast_tests::{Client, TestServer, response};
use serde_json::{Value, json};

/// `POST /dev/token` without any key.
async fn dev_token(server: &TestServer, body: Value) -> (u16, Value) {
    response(
        server
            .http(Method::POST, "/dev/token")
            .json(&body)
            .send()
            .await,
    )
    .await
}

/// A dev token for `user` with `role`.
async fn token_for(server: &TestServer, user: &str, role: &str) -> String {
    let (status, body) = dev_token(server, json!({ "userId": user, "role": role })).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

/// A dev route called with a user's own token.
async fn as_user(
    server: &TestServer,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = server.http(method, path).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    response(request.send().await).await
}

/// A connection authenticated with `token`; `auth_ok` returned.
async fn connect_with(server: &TestServer, token: &str) -> (Client, Value) {
    let mut client = server.connect().await;
    client.send(json!({ "type": "auth", "token": token })).await;
    let ok = client.expect("auth_ok").await;
    client.client_id = ok["clientId"].as_str().expect("clientId").to_owned();
    (client, ok)
}

#[tokio::test]
async fn dev_tokens_sign_in_any_user_as_user_or_admin() {
    let server = TestServer::start().await;
    let (status, body) = dev_token(
        &server,
        json!({ "userId": "alice", "name": " Alice Liddell ", "role": "admin" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["user"],
        json!({ "userId": "alice", "name": "Alice Liddell", "roles": ["admin"] })
    );
    assert_eq!(body["expiresIn"], 3600);
    let (_, ok) = connect_with(&server, body["token"].as_str().unwrap()).await;
    assert_eq!(ok["user"]["roles"], json!(["admin"]));
    assert_eq!(ok["user"]["name"], "Alice Liddell");

    let (status, body) = dev_token(&server, json!({ "userId": "bob" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["user"],
        json!({ "userId": "bob", "roles": ["user"] }),
        "role defaults to user"
    );
}

#[tokio::test]
async fn dev_tokens_refuse_bad_names_and_roles_with_a_clear_error() {
    let server = TestServer::start().await;
    for body in [
        json!({ "userId": "" }),
        json!({ "userId": "two words" }),
        json!({ "userId": "<script>" }),
        json!({ "userId": "x".repeat(65) }),
        json!({ "userId": "alice", "role": "root" }),
        json!({ "userId": "alice", "name": "n".repeat(65) }),
        json!({ "userId": "alice", "roles": ["admin"] }),
        json!({ "name": "alice" }),
        json!(["alice"]),
    ] {
        let (status, answer) = dev_token(&server, body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(answer["error"]["code"], "bad_request", "{body}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (status, _) = response(
        server
            .http(Method::POST, "/dev/token")
            .body("not json")
            .send()
            .await,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn dev_routes_do_not_exist_outside_dev_mode() {
    let server = TestServer::with(Settings {
        dev: Some(false),
        jwt_secret: Some("a-real-secret-for-this-test".into()),
        api_key: Some("a-real-api-key".into()),
        ..Settings::default()
    })
    .await;
    let (status, body) = dev_token(&server, json!({ "userId": "alice", "role": "admin" })).await;
    assert_eq!(status, 404, "{body}");
    let token = server.token("alice");
    for (method, path) in [
        (Method::GET, "/dev/notifications"),
        (Method::GET, "/dev/admin/connections"),
        (Method::POST, "/dev/admin/notify_all"),
    ] {
        let (status, _) = as_user(&server, method, path, &token, None).await;
        assert_eq!(status, 404, "{path}");
    }
    // The real API is unaffected.
    assert_eq!(server.get("/api/stats").await.0, 200);
}

#[tokio::test]
async fn each_user_lists_their_own_notifications_with_their_token() {
    let server = TestServer::start().await;
    for title in ["first", "second"] {
        let (status, _) = server
            .post(
                "/api/notify",
                json!({ "userId": "alice", "title": title, "content": "c" }),
            )
            .await;
        assert_eq!(status, 200);
    }
    let alice = token_for(&server, "alice", "user").await;
    let (status, body) = as_user(&server, Method::GET, "/dev/notifications", &alice, None).await;
    assert_eq!(status, 200, "{body}");
    let titles: Vec<&Value> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["title"])
        .collect();
    assert_eq!(titles, [&json!("second"), &json!("first")], "newest first");
    assert_eq!(body["items"][0]["type"], "notification");

    let (_, body) = as_user(
        &server,
        Method::GET,
        "/dev/notifications?limit=1",
        &alice,
        None,
    )
    .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    let bob = token_for(&server, "bob", "user").await;
    let (_, body) = as_user(&server, Method::GET, "/dev/notifications", &bob, None).await;
    assert_eq!(body["items"], json!([]), "only the caller's own");

    for (path, token, expected) in [
        (
            "/dev/notifications?limit=0",
            Some(alice.as_str()),
            (400, "bad_request"),
        ),
        (
            "/dev/notifications?sort=up",
            Some(alice.as_str()),
            (400, "bad_request"),
        ),
        ("/dev/notifications", None, (401, "not_authenticated")),
        (
            "/dev/notifications",
            Some("not-a-token"),
            (401, "auth_failed"),
        ),
    ] {
        let (status, body) = match token {
            Some(token) => as_user(&server, Method::GET, path, token, None).await,
            None => response(server.http(Method::GET, path).send().await).await,
        };
        assert_eq!(
            (status, body["error"]["code"].clone()),
            (expected.0, json!(expected.1)),
            "{path} with {token:?}"
        );
    }
    // The API key is not a user token.
    let (status, _) = as_user(
        &server,
        Method::GET,
        "/dev/notifications",
        &server.api_key,
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_admin_proxy_serves_admins_only_and_acts_like_the_api() {
    let server = TestServer::start().await;
    let admin = token_for(&server, "alice", "admin").await;
    let user = token_for(&server, "bob", "user").await;
    let (mut bob, _) = connect_with(&server, &user).await;

    for (method, path, body) in [
        (Method::GET, "/dev/admin/connections", None),
        (
            Method::DELETE,
            &*format!("/dev/admin/connections/{}", bob.client_id),
            None,
        ),
        (
            Method::POST,
            "/dev/admin/notify_all",
            Some(json!({ "title": "t", "content": "c" })),
        ),
        (
            Method::POST,
            "/dev/admin/notify",
            Some(json!({ "userId": "bob", "title": "t", "content": "c" })),
        ),
    ] {
        let (status, answer) = as_user(&server, method.clone(), path, &user, body.clone()).await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
        let (status, _) = response(server.http(method, path).send().await).await;
        assert_eq!(status, 401, "{path} without a token");
    }
    bob.expect_silence(Duration::from_millis(200)).await;

    let (status, body) =
        as_user(&server, Method::GET, "/dev/admin/connections", &admin, None).await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<&Value> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["clientId"])
        .collect();
    assert_eq!(listed, [&json!(bob.client_id)]);
    assert_eq!(body["items"][0]["user"]["userId"], "bob");

    let (status, body) = as_user(
        &server,
        Method::POST,
        "/dev/admin/notify",
        &admin,
        Some(json!({ "userId": "bob", "title": "Hello", "content": "from the admin" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(bob.expect("notification").await["title"], "Hello");
    let (status, _) = as_user(
        &server,
        Method::POST,
        "/dev/admin/notify_all",
        &admin,
        Some(json!({ "title": "Maintenance", "content": "at noon" })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        bob.expect("global_notification").await["title"],
        "Maintenance"
    );
    let (status, body) = as_user(
        &server,
        Method::POST,
        "/dev/admin/notify",
        &admin,
        Some(json!({ "userId": "bob" })),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!("bad_request"))
    );

    let path = format!("/dev/admin/connections/{}", bob.client_id);
    let (status, body) = as_user(&server, Method::DELETE, &path, &admin, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(bob.close_code().await, 4000);
    let (status, body) = as_user(&server, Method::DELETE, &path, &admin, None).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, json!("not_found"))
    );
}

#[tokio::test]
async fn admins_get_stats_updates_every_interval_and_nobody_else_does() {
    let server = TestServer::with(Settings {
        stats_interval_ms: Some(100),
        ..Settings::default()
    })
    .await;
    let mut admin = server
        .login_with(json!({ "sub": "alice", "roles": ["admin"] }))
        .await;
    let mut user = server
        .login_with(json!({ "sub": "bob", "roles": ["user"] }))
        .await;
    user.join("lobby").await;
    for n in 0..20 {
        user.request(json!({ "type": "ping" }), json!(n)).await;
    }
    let mut rates = Vec::new();
    for _ in 0..3 {
        let stats = admin.wait_for("stats_update").await;
        assert_eq!(stats["connections"], 2, "{stats}");
        assert_eq!(stats["users"], 2);
        assert_eq!(stats["rooms"], 1);
        assert!(stats["timestamp"].as_u64().is_some());
        rates.push(stats["messagesInPerSec"].as_f64().expect("a rate"));
        assert!(stats["messagesOutPerSec"].as_f64().is_some());
    }
    assert!(
        rates.iter().any(|r| *r > 0.0),
        "the pings show up in a rate: {rates:?}"
    );
    user.expect_silence(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn the_demo_feed_sends_each_subscriber_its_stocks_and_each_game_room_its_score() {
    let server = TestServer::with(Settings {
        demo: Some(true),
        ..Settings::default()
    })
    .await;
    let mut client = server.login("carol").await;
    let reply = client
        .request(
            json!({ "type": "subscribe", "topic": "stocks", "keys": ["AAPL", "TSLA"] }),
            json!("s"),
        )
        .await;
    assert_eq!(reply["type"], "reply", "{reply}");
    client.join("game-2").await;
    let mut symbols = BTreeSet::new();
    let mut games = BTreeSet::new();
    let mut ticks = 0;
    while ticks < 3 || games.is_empty() {
        let message = client.recv().await;
        match message["type"].as_str() {
            Some("stock_update") => {
                ticks += 1;
                for item in message["data"].as_array().expect("data") {
                    symbols.insert(item["key"].as_str().unwrap().to_owned());
                    assert!(item["price"].as_f64().is_some_and(|p| p > 0.0), "{item}");
                    assert!(item["change"].as_f64().is_some(), "{item}");
                }
            }
            Some("score_update") => {
                games.insert(message["game"].as_str().unwrap().to_owned());
                assert!(message["homeScore"].as_u64().is_some(), "{message}");
                assert!(
                    message["minute"].as_u64().is_some_and(|m| m <= 90),
                    "{message}"
                );
                assert!(message["home"].as_str().is_some() && message["away"].as_str().is_some());
            }
            _ => {}
        }
    }
    assert_eq!(
        symbols,
        BTreeSet::from(["AAPL".to_owned(), "TSLA".to_owned()])
    );
    assert_eq!(
        games,
        BTreeSet::from(["game-2".to_owned()]),
        "only the joined game"
    );
}
