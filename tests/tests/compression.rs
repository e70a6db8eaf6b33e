//! Compression end to end (CONTRACT §6): large broadcasts and chats arrive compressed only
//! to the clients that asked for it, from exactly the configured threshold, small ones
//! plain, and an unsupported `compress` value gets plain messages.

mod delivery_common;

use delivery_common::*;
use roomcast_protocol::codec::{DEFAULT_INFLATE_LIMIT, inflate};
use roomcast_server::Settings;
use roomcast_tests::{Client, TestServer};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A client that asked for `compress=gzip`, authenticated as `user`.
async fn login_compressed(server: &TestServer, user: &str) -> Client {
    let mut client = server
        .connect_url(&format!("{}?compress=gzip", server.ws_url()))
        .await;
    client
        .send(json!({ "type": "auth", "token": server.token(user) }))
        .await;
    let ok = client.expect("auth_ok").await;
    client.client_id = ok["clientId"].as_str().expect("clientId").to_owned();
    client
}

/// The message inside a `compressed` one.
#[track_caller]
fn unpack(compressed: &Value) -> Value {
    assert_eq!(compressed["type"], "compressed", "{compressed}");
    assert!(
        compressed["timestamp"].is_u64(),
        "timestamp in {compressed}"
    );
    let data = compressed["data"].as_str().expect("`data` string");
    assert!(data.starts_with("gzip:"), "{data}");
    let json = inflate(data, DEFAULT_INFLATE_LIMIT).expect("valid gzip+base64");
    serde_json::from_str(&json).expect("the inflated data is JSON")
}

/// An application message whose JSON is exactly `len` bytes.
fn message_of_len(len: usize) -> Value {
    let empty = json!({ "type": "sized", "pad": "" }).to_string().len();
    let message = json!({ "type": "sized", "pad": "x".repeat(len - empty) });
    assert_eq!(message.to_string().len(), len);
    message
}

// ---------------------------------------------------------------------------------------
// Compression
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_large_broadcast_arrives_compressed_only_to_clients_that_asked() {
    let server = TestServer::start().await;
    let mut zipped = login_compressed(&server, "zipped").await;
    zipped.join("news").await;
    let mut plain = server.login("plain").await;
    plain.join("news").await;
    settle(&mut zipped).await;
    let message = json!({ "type": "article", "body": "lorem ipsum ".repeat(200) });
    assert!(message.to_string().len() > 1024);

    let (status, body) = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "news" }, "message": message }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let plain_got = plain.recv().await;
    assert_eq!(plain_got, message, "the plain client gets plain JSON");
    let inflated = unpack(&zipped.recv().await);
    assert_eq!(
        inflated, plain_got,
        "compressed holds exactly the plain JSON"
    );
    assert_quiet(&mut zipped).await;
    assert_quiet(&mut plain).await;
}

#[tokio::test]
async fn a_small_message_arrives_plain_even_to_a_compressing_client() {
    let server = TestServer::start().await;
    let mut zipped = login_compressed(&server, "zipped").await;
    zipped.join("news").await;
    let mut plain = server.login("plain").await;
    plain.join("news").await;
    settle(&mut zipped).await;
    let message = json!({ "type": "headline", "text": "short" });

    let (status, body) = server
        .post(
            "/api/broadcast",
            json!({ "to": { "room": "news" }, "message": message }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(zipped.recv().await, message);
    assert_eq!(plain.recv().await, message);
}

#[tokio::test]
async fn a_custom_threshold_compresses_from_exactly_that_size() {
    let threshold = 300;
    let server = TestServer::with(Settings {
        compression_threshold: Some(threshold),
        ..Settings::default()
    })
    .await;
    let mut zipped = login_compressed(&server, "zipped").await;

    let under = message_of_len(threshold - 1);
    let at = message_of_len(threshold);
    for message in [&under, &at] {
        let (status, body) = server
            .post(
                "/api/send",
                json!({ "clientId": zipped.client_id, "message": message }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(zipped.recv().await, under, "one byte under goes plain");
    assert_eq!(
        unpack(&zipped.recv().await),
        at,
        "at the threshold: compressed"
    );
    assert_quiet(&mut zipped).await;
}

#[tokio::test]
async fn a_large_chat_arrives_compressed_to_a_compressing_member() {
    let server = TestServer::start().await;
    let mut zipped = login_compressed(&server, "zipped").await;
    zipped.join("talk").await;
    let mut plain = server.login("plain").await;
    plain.join("talk").await;
    settle(&mut zipped).await;
    let content = "chatter ".repeat(250);

    zipped
        .send(json!({ "type": "chat", "room": "talk", "content": content }))
        .await;
    let plain_chat = plain.expect("chat").await;
    assert_eq!(plain_chat["message"], content.as_str());
    let inflated = unpack(&zipped.recv().await);
    assert_eq!(inflated, plain_chat, "the sender's own copy, compressed");

    plain
        .send(json!({ "type": "chat", "room": "talk", "content": content }))
        .await;
    let echoed = plain.expect("chat").await;
    assert_eq!(unpack(&zipped.recv().await), echoed);
    assert_quiet(&mut zipped).await;
}

#[tokio::test]
async fn an_unsupported_compress_value_gets_plain_messages() {
    let server = TestServer::start().await;
    let mut client = server
        .connect_url(&format!("{}?compress=brotli", server.ws_url()))
        .await;
    client
        .send(json!({ "type": "auth", "token": server.token("alice") }))
        .await;
    let ok = client.expect("auth_ok").await;
    let message = json!({ "type": "article", "body": "lorem ipsum ".repeat(200) });
    let (status, body) = server
        .post(
            "/api/send",
            json!({ "clientId": ok["clientId"], "message": message }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(client.recv().await, message);
}
