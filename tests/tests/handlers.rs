//! The embedded application handler (CONTRACT §4 "any other type", §8 close 4003): the
//! Rust [`Handler`] the server calls for custom message types and for each connection's
//! connect and close, and what happens to a custom type when there is no handler. The
//! webhook the server calls when `webhook_url` is set: `webhook.rs`.
//!
//! The embedded handler here answers `echo` with its payload, `whoami` with what its
//! context says, `fail` with a `forbidden` error, refuses users whose id starts with
//! `banned`, and reports every call on a channel the test reads.

mod handlers_common;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use handlers_common::*;
use roomcast_protocol::ErrorCode;
use roomcast_protocol::client::CustomMessage;
use roomcast_server::{Handler, HandlerContext, HandlerError, Settings};
use roomcast_tests::{Client, TestServer, WAIT};
use serde_json::{Value, json};
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------
// The embedded handler
// ---------------------------------------------------------------------------------------

/// A call the embedded handler received.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Connect { client_id: String, user: Value },
    Message { client_id: String, message: Value },
    Close { client_id: String, user: Value },
}

#[derive(Debug)]
struct TestHandler {
    events: mpsc::UnboundedSender<Event>,
}

impl TestHandler {
    fn record(&self, event: Event) {
        let _ = self.events.send(event);
    }
}

fn user_of(ctx: &HandlerContext) -> Value {
    serde_json::to_value(&*ctx.user).expect("user JSON")
}

impl Handler for TestHandler {
    fn on_connect<'a>(
        &'a self,
        ctx: &'a HandlerContext,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        self.record(Event::Connect {
            client_id: ctx.client_id.to_string(),
            user: user_of(ctx),
        });
        let refused = ctx.user.user_id.as_str().starts_with("banned");
        Box::pin(async move {
            if refused {
                Err(HandlerError::new(
                    ErrorCode::Forbidden,
                    "banned users may not connect",
                ))
            } else {
                Ok(())
            }
        })
    }

    fn on_message<'a>(
        &'a self,
        ctx: &'a HandlerContext,
        message: &'a CustomMessage,
    ) -> BoxFuture<'a, Result<Option<Value>, HandlerError>> {
        self.record(Event::Message {
            client_id: ctx.client_id.to_string(),
            message: json!(message),
        });
        Box::pin(async move {
            match message.kind.as_str() {
                "echo" => Ok(Some(json!({ "echo": message.payload }))),
                "whoami" => Ok(Some(
                    json!({ "clientId": ctx.client_id, "user": user_of(ctx) }),
                )),
                "fail" => Err(HandlerError::new(
                    ErrorCode::Forbidden,
                    "fail is not allowed here",
                )),
                _ => Ok(None),
            }
        })
    }

    fn on_close<'a>(&'a self, ctx: &'a HandlerContext) -> BoxFuture<'a, ()> {
        self.record(Event::Close {
            client_id: ctx.client_id.to_string(),
            user: user_of(ctx),
        });
        Box::pin(std::future::ready(()))
    }
}

/// What the embedded handler reported, in call order.
struct Events(mpsc::UnboundedReceiver<Event>);

impl Events {
    async fn next(&mut self) -> Event {
        tokio::time::timeout(WAIT, self.0.recv())
            .await
            .expect("timed out waiting for a handler call")
            .expect("handler gone")
    }

    /// Nothing was reported so far. The handler reports a call before the server answers
    /// it, so after an answer this is not a race.
    fn assert_none(&mut self) {
        if let Ok(event) = self.0.try_recv() {
            panic!("unexpected handler call: {event:?}");
        }
    }
}

/// A server embedding [`TestHandler`].
async fn embedded() -> (TestServer, Events) {
    let (events, rx) = mpsc::unbounded_channel();
    let server =
        TestServer::with_handler(Settings::default(), Arc::new(TestHandler { events })).await;
    (server, Events(rx))
}

/// Logs in `user` and consumes the handler's `Connect` for it.
async fn login(server: &TestServer, events: &mut Events, user: &str) -> Client {
    let client = server.login(user).await;
    match events.next().await {
        Event::Connect { client_id, .. } => assert_eq!(client_id, client.client_id),
        other => panic!("expected Connect, got {other:?}"),
    }
    client
}

// ---------------------------------------------------------------------------------------
// Embedded handler
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn custom_message_with_id_gets_the_handlers_reply() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;

    let reply = alice
        .request(
            json!({ "type": "echo", "text": "hi", "nested": { "n": [1, 2] } }),
            json!("e1"),
        )
        .await;

    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["data"]["echo"]["text"], "hi", "{reply}");
    assert_eq!(reply["data"]["echo"]["nested"], json!({ "n": [1, 2] }));
}

#[tokio::test]
async fn handler_context_names_the_connection_and_its_user() {
    let (server, mut events) = embedded().await;
    let mut alice = server
        .login_with(json!({ "sub": "alice", "name": "Alice", "roles": ["admin"] }))
        .await;
    let _ = events.next().await;

    let reply = alice.request(json!({ "type": "whoami" }), json!(7)).await;

    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["id"], 7);
    assert_eq!(reply["data"]["clientId"], alice.client_id.as_str());
    assert_eq!(
        reply["data"]["user"],
        json!({ "userId": "alice", "name": "Alice", "roles": ["admin"] })
    );
}

#[tokio::test]
async fn handler_answering_nothing_replies_null() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;

    let reply = alice.request(json!({ "type": "noted" }), json!("n1")).await;

    assert_eq!(reply["type"], "reply", "{reply}");
    assert_eq!(reply["data"], Value::Null, "{reply}");
}

#[tokio::test]
async fn custom_message_without_id_reaches_the_handler_but_gets_no_reply() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;

    alice.send(json!({ "type": "echo", "text": "quiet" })).await;

    match events.next().await {
        Event::Message { message, .. } => {
            assert_eq!(message["type"], "echo");
            assert_eq!(message["text"], "quiet");
        }
        other => panic!("expected the echo, got {other:?}"),
    }
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn handler_error_is_sent_as_error_and_the_connection_stays_open() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;

    let error = alice.request(json!({ "type": "fail" }), json!("f1")).await;

    assert_error(&error, "f1", "forbidden");
    assert_eq!(message_of(&error), "fail is not allowed here");
    assert_usable(&mut alice).await;
    let echo = alice
        .request(json!({ "type": "echo", "text": "still here" }), json!("e2"))
        .await;
    assert_eq!(echo["data"]["echo"]["text"], "still here", "{echo}");
}

#[tokio::test]
async fn handler_error_without_id_is_still_reported() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;

    alice.send(json!({ "type": "fail" })).await;

    let error = alice.expect("error").await;
    assert_eq!(error["code"], "forbidden", "{error}");
    assert!(error.get("id").is_none_or(Value::is_null), "{error}");
    assert_usable(&mut alice).await;
}

#[tokio::test]
async fn refused_user_gets_forbidden_then_4003_via_auth_message() {
    let (server, mut events) = embedded().await;
    let mut banned = server.connect().await;

    banned
        .send(json!({ "type": "auth", "token": server.token("banned-bob"), "id": "a1" }))
        .await;

    let error = assert_refused(&mut banned).await;
    assert_eq!(error["id"], "a1", "{error}");
    assert_eq!(message_of(&error), "banned users may not connect");
    assert!(matches!(events.next().await, Event::Connect { .. }));
}

#[tokio::test]
async fn refused_user_gets_forbidden_then_4003_via_token_in_url() {
    let (server, _events) = embedded().await;
    let url = format!("{}?token={}", server.ws_url(), server.token("banned-carol"));

    let mut banned = server.connect_url(&url).await;

    let error = assert_refused(&mut banned).await;
    assert_eq!(message_of(&error), "banned users may not connect");
}

#[tokio::test]
async fn refused_user_is_never_an_authenticated_connection() {
    let (server, _events) = embedded().await;
    let mut banned = server.connect().await;
    banned
        .send(json!({ "type": "auth", "token": server.token("banned-bob") }))
        .await;
    assert_refused(&mut banned).await;

    let (status, body) = server.get("/api/connections").await;

    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    assert!(
        items.iter().all(|c| c["user"]["userId"] != "banned-bob"),
        "{body}"
    );
}

#[tokio::test]
async fn allowed_user_still_connects_next_to_refused_ones() {
    let (server, mut events) = embedded().await;
    let mut banned = server.connect().await;
    banned
        .send(json!({ "type": "auth", "token": server.token("banned-bob") }))
        .await;
    assert_refused(&mut banned).await;
    let _ = events.next().await;

    let mut alice = login(&server, &mut events, "alice").await;

    assert_usable(&mut alice).await;
}

#[tokio::test]
async fn on_connect_and_on_close_get_the_connection_and_user() {
    let (server, mut events) = embedded().await;
    let alice = server
        .login_with(json!({ "sub": "alice", "name": "Alice" }))
        .await;
    let client_id = alice.client_id.clone();
    let user = json!({ "userId": "alice", "name": "Alice" });
    assert_eq!(
        events.next().await,
        Event::Connect {
            client_id: client_id.clone(),
            user: user.clone()
        }
    );

    alice.close().await;

    assert_eq!(events.next().await, Event::Close { client_id, user });
}

#[tokio::test]
async fn a_connection_over_the_per_user_limit_after_on_connect_gets_on_close_too() {
    let (events, rx) = mpsc::unbounded_channel();
    let settings = Settings {
        max_connections_per_user: Some(1),
        ..Settings::default()
    };
    let server = TestServer::with_handler(settings, Arc::new(TestHandler { events })).await;
    let mut events = Events(rx);
    let mut first = login(&server, &mut events, "alice").await;

    let token = server.token("alice");
    let mut second = server.connect().await;
    second
        .send(json!({ "type": "auth", "token": token, "id": "a" }))
        .await;
    let error = second.expect("error").await;
    assert_eq!(error["code"], "limit_exceeded", "{error}");
    assert_eq!(second.close_code().await, 4009);
    // The application heard `connect` for it, so it hears the matching `close`.
    let Event::Connect { client_id, .. } = events.next().await else {
        panic!("expected Connect for the second connection");
    };
    assert_eq!(
        events.next().await,
        Event::Close {
            client_id,
            user: json!({ "userId": "alice" })
        }
    );
    assert_usable(&mut first).await;
    events.assert_none();
}

#[tokio::test]
async fn on_close_is_called_for_the_connection_that_closed_only() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;
    let bob = login(&server, &mut events, "bob").await;
    let bob_id = bob.client_id.clone();

    bob.close().await;

    match events.next().await {
        Event::Close { client_id, user } => {
            assert_eq!(client_id, bob_id);
            assert_eq!(user["userId"], "bob");
        }
        other => panic!("expected bob's Close, got {other:?}"),
    }
    assert_usable(&mut alice).await;
    events.assert_none();
}

#[tokio::test]
async fn known_types_never_reach_the_handler() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;
    alice.join("lobby").await;
    let chat = alice
        .request(
            json!({ "type": "chat", "room": "lobby", "content": "hello" }),
            json!("c1"),
        )
        .await;
    assert_eq!(chat["type"], "reply", "{chat}");
    let history = alice
        .request(json!({ "type": "history", "room": "lobby" }), json!("h1"))
        .await;
    assert_eq!(history["type"], "reply", "{history}");
    assert_usable(&mut alice).await;

    events.assert_none();
    let echo = alice
        .request(json!({ "type": "echo", "text": "mine" }), json!("e1"))
        .await;
    assert_eq!(echo["type"], "reply", "{echo}");
    match events.next().await {
        Event::Message { message, .. } => assert_eq!(message["type"], "echo"),
        other => panic!("expected only the echo, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_known_type_is_bad_request_not_a_custom_message() {
    let (server, mut events) = embedded().await;
    let mut alice = login(&server, &mut events, "alice").await;

    let error = alice
        .request(json!({ "type": "chat", "room": "lobby" }), json!("bad"))
        .await;

    assert_error(&error, "bad", "bad_request");
    events.assert_none();
    assert_usable(&mut alice).await;
}

#[tokio::test]
async fn custom_message_before_auth_is_not_authenticated_and_skips_the_handler() {
    let (server, mut events) = embedded().await;
    let mut anonymous = server.connect().await;

    let error = anonymous
        .request(json!({ "type": "echo", "text": "hi" }), json!("early"))
        .await;

    assert_error(&error, "early", "not_authenticated");
    events.assert_none();
}

// ---------------------------------------------------------------------------------------
// No handler
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn without_a_handler_a_custom_type_is_bad_request() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;

    let error = alice
        .request(json!({ "type": "echo", "text": "hi" }), json!("e1"))
        .await;

    assert_error(&error, "e1", "bad_request");
    assert!(message_of(&error).contains("handler"), "{error}");
    assert!(message_of(&error).contains("echo"), "{error}");
    assert_usable(&mut alice).await;
}
