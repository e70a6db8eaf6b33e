//! The HTTP API's key and minted tokens end to end (CONTRACT §9 with §3): every `/api`
//! route refuses a missing or wrong key and changes nothing when it does, `/health` and
//! `/metrics` need none, and a token from `POST /api/token` authenticates with its claims.
//!
//! Every test runs its own server on `127.0.0.1:0` and talks to it over real HTTP and
//! WebSocket connections (helpers in `api_common`).

mod api_common;

use api_common::*;
use reqwest::Method;
use roomcast_tests::{TestServer, response};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

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
