//! Incoming frames: `ping`, envelopes (`compressed`, `batch_messages`) unwrapped only as
//! deep as the server wraps them, and acknowledgements after the app got a message.

use roomcast_protocol::codec;

use super::*;

#[test]
fn every_ping_is_answered_with_pong() {
    let mut core = open(options());
    let effects = core.on_frame(r#"{"type":"ping","timestamp":5}"#, 5);
    assert_eq!(sent(&effects), [json!({"type":"pong"})]);
    assert!(emitted(&effects).is_empty());
}

#[test]
fn compressed_messages_are_inflated_and_batches_unpacked_in_order() {
    let mut core = open(options());
    let inner = json!({"type":"score_update","n":1});
    let compressed =
        json!({"type":"compressed","data":codec::deflate(&inner.to_string()),"timestamp":1});
    assert_eq!(emitted(&core.on_frame(&compressed.to_string(), 1)), [inner]);

    let batch = json!({"type":"batch_messages","room":"ticker","messages":[{"type":"tick","n":1},{"type":"tick","n":2}],"count":2,"timestamp":1});
    let compressed =
        json!({"type":"compressed","data":codec::deflate(&batch.to_string()),"timestamp":1});
    let ticks: Vec<Value> = emitted(&core.on_frame(&compressed.to_string(), 2));
    assert_eq!(
        ticks,
        [json!({"type":"tick","n":1}), json!({"type":"tick","n":2})]
    );

    // Garbage is dropped, not surfaced.
    let bad = json!({"type":"compressed","data":"gzip:!!!","timestamp":1});
    assert!(core.on_frame(&bad.to_string(), 3).is_empty());
    assert!(core.on_frame("not json", 3).is_empty());
}

#[test]
fn ack_requests_are_acknowledged_after_the_app_got_the_message() {
    let mut core = open(options());
    let message = json!({"type":"order","_ack":true,"_messageId":"m-7"});
    let effects = core.on_frame(&message.to_string(), 1);
    assert_eq!(emitted(&effects[..1]), [message]);
    assert_eq!(
        sent(&effects[1..]),
        [json!({"type":"ack","messageId":"m-7"})]
    );
}

#[test]
fn envelopes_are_unwrapped_only_as_deep_as_the_server_wraps() {
    let mut core = open(options());
    let wrap = |inner: &str| {
        json!({"type":"compressed","data":codec::deflate(inner),"timestamp":1}).to_string()
    };
    let message = json!({"type":"alert","n":1}).to_string();
    let batch = json!({"type":"batch_messages","room":"r","messages":[{"type":"alert","n":1}],"count":1,"timestamp":1}).to_string();
    assert_eq!(
        emitted(&core.on_frame(&wrap(&batch), 1)).len(),
        1,
        "a compressed batch"
    );
    assert!(emitted(&core.on_frame(&wrap(&wrap(&wrap(&message))), 1)).is_empty());
}
