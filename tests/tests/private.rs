//! Private messages end to end (CONTRACT §4 `private`; §5 `private`): a private reaches
//! every connection of its target and the sender's other connections, names its target
//! and a `from` the server derives, gets ids in send order, waits for an offline user and
//! arrives exactly once right after its next `auth_ok`, even racing a connect; bad
//! requests get errors and deliver nothing.

mod messaging_common;

use messaging_common::*;
use roomcast_tests::TestServer;
use serde_json::json;

// ---------------------------------------------------------------------------------------
// Private messages
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn private_reaches_every_connection_of_the_target_and_the_senders_other_connections() {
    let server = TestServer::start().await;
    let alice_claims = json!({ "sub": "alice", "name": "Alice" });
    let mut alice = server.login_with(alice_claims.clone()).await;
    let mut alice_phone = server.login_with(alice_claims).await;
    let mut bob = server.login("bob").await;
    let mut bob_phone = server.login("bob").await;
    let mut carol = server.login("carol").await;

    let content = json!({ "text": "psst", "n": [1, 2] });
    let sent = private_ok(&mut alice, "bob", content.clone(), "p1").await;
    assert_eq!(sent["delivered"], true, "{sent}");
    assert!(sent["timestamp"].as_u64().is_some(), "{sent}");

    for (who, client) in [
        ("bob", &mut bob),
        ("bob's phone", &mut bob_phone),
        ("alice's phone", &mut alice_phone),
    ] {
        let got = client.expect("private").await;
        assert_eq!(got["id"], sent["id"], "{who}: {got}");
        assert_eq!(got["message"], content, "{who}: {got}");
        assert_eq!(
            got["from"],
            json!({ "userId": "alice", "name": "Alice" }),
            "{who}: {got}"
        );
        assert!(got["timestamp"].as_u64().is_some(), "{who}: {got}");
        client.expect_silence(QUIET).await;
    }
    // The sending connection got only its reply (consumed by `request`).
    alice.expect_silence(QUIET).await;
    carol.expect_silence(QUIET).await;
}

#[tokio::test]
async fn private_names_its_target_live_on_every_side_and_when_delivered_at_connect() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut alice_phone = server.login("alice").await;
    let mut bob = server.login("bob").await;

    let sent = private_ok(&mut alice, "bob", json!("live"), "p1").await;
    for (who, client) in [("bob", &mut bob), ("alice's phone", &mut alice_phone)] {
        let got = client.expect("private").await;
        assert_eq!(got["id"], sent["id"], "{who}: {got}");
        assert_eq!(got["to"], "bob", "{who}: {got}");
        assert_eq!(got["from"]["userId"], "alice", "{who}: {got}");
    }

    // Carol has no connection: her message waits, and still names her when it arrives.
    let sent = private_ok(&mut alice, "carol", json!("later"), "p2").await;
    assert_eq!(sent["delivered"], false, "{sent}");
    let mirrored = alice_phone.expect("private").await;
    assert_eq!(mirrored["id"], sent["id"], "{mirrored}");
    assert_eq!(mirrored["to"], "carol", "{mirrored}");
    let mut carol = server.login("carol").await;
    let got = carol.expect("private").await;
    assert_eq!(got["id"], sent["id"], "{got}");
    assert_eq!(got["to"], "carol", "{got}");
    assert_eq!(got["from"], json!({ "userId": "alice" }), "{got}");
    carol.expect_silence(QUIET).await;
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn private_from_is_derived_by_the_server_and_cannot_be_spoofed() {
    let server = TestServer::start().await;
    let mut mallory = server
        .login_with(json!({ "sub": "mallory", "roles": ["guest"] }))
        .await;
    let mut bob = server.login("bob").await;
    mallory
        .send(json!({
            "type": "private",
            "targetUserId": "bob",
            "content": "it's me, your boss",
            "from": { "userId": "boss", "name": "The Boss", "roles": ["admin"] },
            "userId": "boss",
            "id": "spoof",
        }))
        .await;
    let answer = mallory.expect("reply").await;
    assert_eq!(answer["id"], "spoof", "{answer}");
    let got = bob.expect("private").await;
    assert_eq!(
        got["from"],
        json!({ "userId": "mallory", "roles": ["guest"] }),
        "{got}"
    );
    assert_eq!(got["message"], "it's me, your boss");
}

#[tokio::test]
async fn private_message_ids_increase_in_send_order() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut carol = server.login("carol").await;
    let mut bob = server.login("bob").await;
    let mut sent = Vec::new();
    for i in 0..3 {
        let sender = if i == 1 { &mut carol } else { &mut alice };
        sent.push(private_ok(sender, "bob", json!(i), &format!("p{i}")).await);
    }
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(bob.expect("private").await);
    }
    for (i, (got, reply)) in received.iter().zip(&sent).enumerate() {
        assert_eq!(got["id"], reply["id"], "message {i}");
        assert_eq!(got["message"], json!(i), "message {i}");
    }
    for pair in received.windows(2) {
        assert!(
            id_of(&pair[0]) < id_of(&pair[1]),
            "{} then {}",
            pair[0],
            pair[1]
        );
    }
}

#[tokio::test]
async fn private_to_an_offline_user_arrives_right_after_its_next_auth_ok_exactly_once() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let bob = server.login("bob").await;
    disconnect(&server, bob).await;

    let sent = private_ok(&mut alice, "bob", json!({ "text": "later" }), "p").await;
    assert_eq!(sent["delivered"], false, "{sent}");
    alice.expect_silence(QUIET).await;

    // `login` consumed `auth_ok`: the pending message must be the very next frame.
    let mut bob = server.login("bob").await;
    let got = bob.expect("private").await;
    assert_eq!(got["id"], sent["id"], "{got}");
    assert_eq!(got["message"], json!({ "text": "later" }));
    assert_eq!(got["from"], json!({ "userId": "alice" }));
    bob.expect_silence(QUIET).await;

    // Neither a second connection nor a reconnect gets it again.
    let mut bob_phone = server.login("bob").await;
    bob_phone.expect_silence(QUIET).await;
    disconnect(&server, bob).await;
    disconnect(&server, bob_phone).await;
    let mut bob = server.login("bob").await;
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn several_pending_private_messages_arrive_oldest_first() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut carol = server.login("carol").await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let sender = if i % 2 == 0 { &mut alice } else { &mut carol };
        let sent = private_ok(sender, "bob", json!(format!("m{i}")), &format!("p{i}")).await;
        assert_eq!(sent["delivered"], false, "{sent}");
        ids.push(sent["id"].clone());
    }

    let mut bob = server.login("bob").await;
    for (i, id) in ids.iter().enumerate() {
        let got = bob.expect("private").await;
        assert_eq!(&got["id"], id, "message {i}: {got}");
        assert_eq!(got["message"], format!("m{i}"), "{got}");
        let sender = if i % 2 == 0 { "alice" } else { "carol" };
        assert_eq!(got["from"]["userId"], sender, "{got}");
    }
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn private_messages_racing_a_connect_arrive_exactly_once() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let count = 30;
    let sending = async {
        for i in 0..count {
            alice
                .send(json!({ "type": "private", "targetUserId": "bob", "content": i, "id": i }))
                .await;
        }
        let mut ids = Vec::new();
        for _ in 0..count {
            let reply = alice.expect("reply").await;
            ids.push(reply["data"]["id"].as_str().expect("id").to_owned());
        }
        ids
    };
    let (mut sent, mut bob) = tokio::join!(sending, server.login("bob"));
    let mut received = Vec::new();
    for _ in 0..count {
        received.push(id_of(&bob.expect("private").await).to_owned());
    }
    bob.expect_silence(QUIET).await;
    sent.sort();
    received.sort();
    assert_eq!(received, sent, "each message once, pending or live");
}

#[tokio::test]
async fn what_was_delivered_live_is_not_delivered_again_on_reconnect() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let sent = private_ok(&mut alice, "bob", json!("live"), "p").await;
    assert_eq!(sent["delivered"], true, "{sent}");
    bob.expect("private").await;
    notify_titled(&server, "bob", "live").await;
    bob.expect("notification").await;

    disconnect(&server, bob).await;
    let mut bob = server.login("bob").await;
    bob.expect_silence(QUIET).await;
}

#[tokio::test]
async fn a_private_to_oneself_from_ones_only_connection_is_delivered_and_not_pending() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let sent = private_ok(&mut alice, "alice", json!("a note"), "p").await;
    assert_eq!(
        sent["delivered"], true,
        "the sending connection has it: {sent}"
    );
    disconnect(&server, alice).await;
    let mut alice = server.login("alice").await;
    alice.expect_silence(QUIET).await;
}

#[tokio::test]
async fn bad_private_requests_get_errors_and_deliver_nothing() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let too_long = "x".repeat(5 * 1024);
    let cases = [
        (json!({ "type": "private", "content": "hi" }), "bad_request"),
        (
            json!({ "type": "private", "targetUserId": "bob" }),
            "bad_request",
        ),
        (
            json!({ "type": "private", "targetUserId": "", "content": "hi" }),
            "bad_request",
        ),
        (
            json!({ "type": "private", "targetUserId": 7, "content": "hi" }),
            "bad_request",
        ),
        (
            json!({ "type": "private", "targetUserId": "bob", "content": too_long }),
            "too_large",
        ),
    ];
    for (i, (message, code)) in cases.into_iter().enumerate() {
        let answer = alice.request(message.clone(), json!(i)).await;
        assert_eq!(answer["type"], "error", "{message}: {answer}");
        assert_eq!(answer["code"], code, "{message}: {answer}");
    }

    let mut anonymous = server.connect().await;
    let answer = anonymous
        .request(
            json!({ "type": "private", "targetUserId": "bob", "content": "hi" }),
            json!("anon"),
        )
        .await;
    assert_eq!(answer["code"], "not_authenticated", "{answer}");

    bob.expect_silence(QUIET).await;
    // Nothing was stored for later either.
    disconnect(&server, bob).await;
    let mut bob = server.login("bob").await;
    bob.expect_silence(QUIET).await;
}
