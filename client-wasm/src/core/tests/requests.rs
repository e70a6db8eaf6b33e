//! Requests and their answers: correlation by id, custom types, timeouts, and the
//! offline queue (bounded, in order, sent after `auth_ok`).

use roomcast_protocol::ErrorCode;

use super::*;

#[test]
fn a_request_resolves_with_its_reply_or_rejects_with_its_error() {
    let mut core = open(options());
    let (id, effects) = core.request(
        "chat",
        &map(&json!({"room":"lobby","content":"hi"})),
        None,
        0,
    );
    assert_eq!(
        sent(&effects),
        [json!({"type":"chat","room":"lobby","content":"hi","id":id})]
    );
    let effects = core.on_frame(
        &json!({"type":"reply","id":id,"ok":true,"data":{"n":1}}).to_string(),
        1,
    );
    assert_eq!(settled(&effects), [(id, Ok(json!({"n":1})))]);

    let (id, _) = core.request("history", &map(&json!({"room":"lobby"})), None, 2);
    let error = json!({"type":"error","id":id,"code":"not_member","message":"join first"});
    let effects = core.on_frame(&error.to_string(), 3);
    assert_eq!(
        settled(&effects),
        [(
            id,
            Err(ClientError::Server {
                code: ErrorCode::NotMember,
                message: "join first".into()
            })
        )]
    );
    // A second answer to the same id settles nothing.
    assert!(settled(&core.on_frame(&error.to_string(), 4)).is_empty());
}

#[test]
fn custom_types_are_requests_too_and_only_unsendable_ones_are_refused_locally() {
    let mut core = open(options());
    let (id, effects) = core.request("roll", &map(&json!({"sides":20})), None, 0);
    assert_eq!(sent(&effects), [json!({"type":"roll","sides":20,"id":id})]);
    // The type and id are the SDK's; fields keep their exact JSON (big numbers, escapes).
    let payload = r#"{"type":"x","id":"mine","n":12345678901234567890,"s":"a\"b\u00e9"}"#;
    let (id, effects) = core.request("roll", payload, None, 0);
    let [Effect::Send(frame)] = &effects[..] else {
        panic!("{effects:?}")
    };
    assert_eq!(
        frame,
        &format!(r#"{{"type":"roll","id":{id},"n":12345678901234567890,"s":"a\"b\u00e9"}}"#)
    );
    // No payload is no fields.
    let (id, effects) = core.request("roll", "", None, 0);
    assert_eq!(sent(&effects), [json!({"type":"roll","id":id})]);
    // The server validates fields; the SDK refuses only what it cannot send.
    let (id, effects) = core.request("chat", &map(&json!({"room":"lobby"})), None, 0);
    assert_eq!(
        sent(&effects),
        [json!({"type":"chat","room":"lobby","id":id})]
    );
    for (kind, payload) in [
        ("auth", json!({"token":"x"})),
        ("ack", json!({})),
        ("", json!({})),
        ("join", json!({"room":""})),
        ("leave", json!({"room":7})),
        ("roll", json!([1, 2])),
        ("roll", json!("text")),
    ] {
        let (id, effects) = core.request(kind, &map(&payload), None, 0);
        assert!(sent(&effects).is_empty(), "{kind}");
        assert!(
            matches!(&settled(&effects)[..], [(i, Err(ClientError::InvalidRequest(_)))] if *i == id),
            "{kind}: {effects:?}"
        );
    }
}

#[test]
fn an_unanswered_request_times_out() {
    let mut core = open(options());
    let (id, _) = core.request("ping", "", Some(300), 1_000);
    assert_eq!(core.next_deadline(), Some(1_300));
    assert!(settled(&core.on_timer(1_299)).is_empty());
    assert_eq!(
        settled(&core.on_timer(1_300)),
        [(id, Err(ClientError::Timeout(300)))]
    );
}

#[test]
fn a_pong_answers_a_ping_request() {
    let mut core = open(options());
    let (id, _) = core.request("ping", "", None, 0);
    let effects = core.on_frame(&json!({"type":"pong","id":id,"timestamp":9}).to_string(), 1);
    assert_eq!(settled(&effects)[0].1.as_ref().unwrap()["timestamp"], 9);
}

#[test]
fn requests_in_flight_when_the_connection_drops_are_rejected_as_disconnected() {
    let mut core = open(options());
    let (id, _) = core.request("chat", &map(&json!({"room":"lobby","content":1})), None, 0);
    let effects = core.on_close(1006, "gone", 1);
    assert_eq!(settled(&effects), [(id, Err(ClientError::Disconnected))]);
}

#[test]
fn requests_made_offline_are_queued_sent_in_order_after_auth_and_bounded() {
    let mut core = open(options());
    core.on_close(1006, "gone", 0);
    let (first, effects) = core.request("chat", &map(&json!({"room":"a","content":1})), None, 1);
    assert!(effects.is_empty(), "queued, not sent: {effects:?}");
    let (second, _) = core.request("chat", &map(&json!({"room":"a","content":2})), None, 2);
    let (third, effects) = core.request("chat", &map(&json!({"room":"a","content":3})), None, 3);
    assert_eq!(settled(&effects), [(third, Err(ClientError::QueueFull(2)))]);

    core.reconnect("t".into(), 10);
    core.on_open(10);
    let effects = core.on_frame(&auth_ok(), 11);
    let frames = sent(&effects);
    assert_eq!(
        frames
            .iter()
            .map(|f| f["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [first, second]
    );
    assert_eq!(frames[0]["content"], 1);
}

#[test]
fn queued_requests_time_out_while_waiting() {
    let mut core = open(options());
    core.on_close(1006, "gone", 0);
    let (id, _) = core.request("chat", &map(&json!({"room":"a","content":1})), Some(50), 0);
    assert_eq!(
        settled(&core.on_timer(50)),
        [(id, Err(ClientError::Timeout(50)))]
    );
}
