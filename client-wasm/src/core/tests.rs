//! The core's behaviour, driven like the façade drives it: inputs in, effects out.

use roomcast_protocol::{ErrorCode, codec};
use serde_json::{Value, json};

use super::membership::{REJOIN_RETRIES, REJOIN_RETRY_MS};
use super::*;

const URL: &str = "ws://127.0.0.1:8080/ws";

/// A core with fixed randomness (0.5) and a small queue.
fn core(options: Options) -> Core {
    Core::new(URL, options, Box::new(|| 0.5))
}

fn options() -> Options {
    Options {
        reconnect: Some(Backoff {
            initial_delay_ms: 100,
            max_delay_ms: 1_000,
            max_retries: Some(3),
            jitter: false,
        }),
        offline_queue_limit: 2,
        ..Options::default()
    }
}

/// A request payload, as the façade passes it (`JSON.stringify` of the app's object).
fn map(value: &Value) -> String {
    value.to_string()
}

fn sent(effects: &[Effect]) -> Vec<Value> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send(text) => Some(serde_json::from_str(text).unwrap()),
            _ => None,
        })
        .collect()
}

fn emitted(effects: &[Effect]) -> Vec<Value> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Emit(message) => {
                let value: Value = serde_json::from_str(&message.json).unwrap();
                assert_eq!(
                    value["type"],
                    message.kind.as_str(),
                    "emitted with its type"
                );
                Some(value)
            }
            _ => None,
        })
        .collect()
}

fn settled(effects: &[Effect]) -> Vec<(u64, Result<Value, ClientError>)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Settle(id, outcome) => Some((
                *id,
                outcome
                    .clone()
                    .map(|json| serde_json::from_str(&json).unwrap()),
            )),
            _ => None,
        })
        .collect()
}

fn auth_ok() -> String {
    json!({"type":"auth_ok","clientId":"c1","userId":"alice","user":{"userId":"alice"},"rooms":[],"timestamp":1}).to_string()
}

fn chat(room: &str, n: u64) -> String {
    json!({"type":"chat","id":format!("{n:016x}"),"room":room,"from":{"userId":"bob"},"message":n,"timestamp":1}).to_string()
}

/// A core that connected and authenticated at t=0.
fn open(options: Options) -> Core {
    let mut core = core(options);
    core.connect("t0".into(), 0);
    core.on_open(0);
    core.on_frame(&auth_ok(), 0);
    assert!(core.is_open());
    core
}

#[test]
fn connecting_opens_the_socket_then_authenticates_then_is_open() {
    let mut core = core(Options::default());
    let effects = core.connect("secret".into(), 0);
    assert_eq!(
        effects,
        [
            Effect::State(State::Connecting),
            Effect::Open(format!("{URL}?compress=gzip"))
        ]
    );
    assert_eq!(
        sent(&core.on_open(1)),
        [json!({"type":"auth","token":"secret"})]
    );
    let effects = core.on_frame(&auth_ok(), 2);
    assert_eq!(effects[0], Effect::State(State::Open));
    assert_eq!(emitted(&effects)[0]["type"], "auth_ok");
}

#[test]
fn without_compression_the_url_is_left_alone() {
    let mut core = core(Options {
        compress: false,
        ..Options::default()
    });
    assert_eq!(core.connect("t".into(), 0)[1], Effect::Open(URL.into()));
}

#[test]
fn every_ping_is_answered_with_pong() {
    let mut core = open(options());
    let effects = core.on_frame(r#"{"type":"ping","timestamp":5}"#, 5);
    assert_eq!(sent(&effects), [json!({"type":"pong"})]);
    assert!(emitted(&effects).is_empty());
}

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
fn final_close_codes_stop_and_others_retry_with_backoff() {
    for code in [4000, 4001, 4003, 4009] {
        let mut core = open(options());
        let effects = core.on_close(code, "bye", 1);
        assert_eq!(
            effects.last(),
            Some(&Effect::State(State::Closed {
                code: Some(code),
                reason: "bye".into()
            })),
            "{code}"
        );
    }
    let mut core = open(Options {
        refreshable_token: true,
        ..options()
    });
    assert_eq!(
        core.on_close(4001, "expired", 1).last(),
        Some(&Effect::RetryAfter(100))
    );

    let mut core = open(options());
    let mut delays = Vec::new();
    for attempt in 1..=3 {
        let effects = core.on_close(1006, "gone", 0);
        assert_eq!(
            effects[0],
            Effect::State(State::Reconnecting {
                attempt,
                delay_ms: 100 << (attempt - 1)
            })
        );
        let Some(Effect::RetryAfter(delay)) = effects.last() else {
            panic!("{effects:?}")
        };
        delays.push(*delay);
        assert_eq!(
            core.reconnect(format!("t{attempt}"), 0)[1],
            Effect::Open(format!("{URL}?compress=gzip"))
        );
        assert_eq!(
            sent(&core.on_open(0)),
            [json!({"type":"auth","token":format!("t{attempt}")})]
        );
    }
    assert_eq!(delays, [100, 200, 400]);
    let effects = core.on_close(1006, "gone", 0);
    assert!(
        matches!(effects.last(), Some(Effect::State(State::Closed { reason, .. })) if reason.contains("gave up after 3")),
        "{effects:?}"
    );
}

#[test]
fn auth_ok_resets_the_backoff() {
    let mut core = open(options());
    core.on_close(1006, "gone", 0);
    core.reconnect("t".into(), 0);
    core.on_open(0);
    core.on_frame(&auth_ok(), 0);
    assert_eq!(
        core.on_close(1006, "gone", 0)[0],
        Effect::State(State::Reconnecting {
            attempt: 1,
            delay_ms: 100
        })
    );
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

#[test]
fn rooms_are_rejoined_from_the_last_chat_seen_and_nothing_arrives_twice() {
    let mut core = open(options());
    let (join, effects) = core.request("join", &map(&json!({"room":"lobby"})), None, 0);
    assert_eq!(
        sent(&effects),
        [json!({"type":"join","room":"lobby","id":join})]
    );
    core.on_frame(
        &json!({"type":"reply","id":join,"ok":true,"data":{}}).to_string(),
        0,
    );
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 1), 1)).len(), 1);
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 2), 1)).len(), 1);

    core.on_close(1006, "gone", 2);
    core.reconnect("t".into(), 3);
    core.on_open(3);
    let effects = core.on_frame(&auth_ok(), 4);
    let rejoin = &sent(&effects)[0];
    assert_eq!(rejoin["type"], "join");
    assert_eq!(rejoin["since"], format!("{:016x}", 2));
    // The replay, and a live chat the server had already sent before the drop.
    let replayed: Vec<Value> = [
        chat("lobby", 2),
        chat("lobby", 3),
        chat("lobby", 3),
        chat("lobby", 4),
    ]
    .iter()
    .flat_map(|c| emitted(&core.on_frame(c, 5)))
    .collect();
    assert_eq!(
        replayed
            .iter()
            .map(|c| c["message"].clone())
            .collect::<Vec<_>>(),
        [json!(3), json!(4)]
    );
}

#[test]
fn a_rejoin_the_server_could_not_recover_starts_the_room_over() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 40), 1)).len(), 1);
    let rejoin = &reconnected(&mut core, 2)[0];
    assert_eq!(rejoin["since"], format!("{:016x}", 40));
    // The server's store started over: ids begin again at 1, below our position.
    let reply = json!({"type":"reply","id":rejoin["id"],"ok":true,"data":{"room":"lobby","recovered":false,"replayed":0}});
    core.on_frame(&reply.to_string(), 3);
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 1), 4)).len(), 1);
    assert!(
        emitted(&core.on_frame(&chat("lobby", 1), 4)).is_empty(),
        "still once"
    );
    // A recovered rejoin keeps the position.
    let rejoin = &reconnected(&mut core, 5)[0];
    assert_eq!(rejoin["since"], format!("{:016x}", 1));
    let reply = json!({"type":"reply","id":rejoin["id"],"ok":true,"data":{"room":"lobby","recovered":true,"replayed":0}});
    core.on_frame(&reply.to_string(), 6);
    assert!(emitted(&core.on_frame(&chat("lobby", 1), 7)).is_empty());
}

#[test]
fn a_join_made_offline_is_settled_by_the_rejoin() {
    let mut core = core(options());
    let (join, effects) = core.request("join", &map(&json!({"room":"lobby"})), None, 0);
    assert!(effects.is_empty());
    core.connect("t".into(), 0);
    core.on_open(0);
    let frames = sent(&core.on_frame(&auth_ok(), 0));
    let rejoin = frames[0]["id"].as_u64().unwrap();
    let reply = json!({"type":"reply","id":rejoin,"ok":true,"data":{"room":"lobby","recovered":false,"replayed":0}});
    assert_eq!(
        settled(&core.on_frame(&reply.to_string(), 1)),
        [(
            join,
            Ok(json!({"room":"lobby","recovered":false,"replayed":0}))
        )]
    );
}

#[test]
fn chats_of_rooms_the_server_joined_are_passed_through() {
    let mut core = open(options());
    assert_eq!(
        emitted(&core.on_frame(&chat("announcements", 1), 1)).len(),
        1
    );
    assert_eq!(
        emitted(&core.on_frame(&chat("announcements", 1), 1)).len(),
        1
    );
}

#[test]
fn leaving_forgets_the_room() {
    let mut core = open(options());
    core.request("join", &map(&json!({"room":"lobby"})), None, 0);
    let (leave, effects) = core.request("leave", &map(&json!({"room":"lobby"})), None, 0);
    assert_eq!(
        sent(&effects),
        [json!({"type":"leave","room":"lobby","id":leave})]
    );
    core.on_close(1006, "gone", 1);
    core.reconnect("t".into(), 2);
    core.on_open(2);
    assert!(sent(&core.on_frame(&auth_ok(), 2)).is_empty(), "no rejoin");
}

#[test]
fn a_silent_server_is_replaced_after_twice_the_heartbeat() {
    let mut core = open(Options {
        heartbeat_interval_ms: 1_000,
        ..options()
    });
    core.on_frame(r#"{"type":"ping","timestamp":1}"#, 500);
    assert_eq!(core.next_deadline(), Some(2_500));
    assert!(core.on_timer(2_499).is_empty());
    let effects = core.on_timer(2_500);
    assert!(
        matches!(effects[0], Effect::Close { code: 4000, .. }),
        "{effects:?}"
    );
    assert!(effects.contains(&Effect::RetryAfter(100)), "{effects:?}");
    // The old socket's late close event changes nothing.
    assert!(core.on_close(1006, "late", 2_600).is_empty());
}

#[test]
fn closing_rejects_everything_waiting_and_stops() {
    let mut core = open(options());
    let (sent_id, _) = core.request("chat", &map(&json!({"room":"a","content":1})), None, 0);
    let effects = core.close();
    assert_eq!(
        effects[0],
        Effect::Close {
            code: 1000,
            reason: "client closed".into()
        }
    );
    assert_eq!(settled(&effects), [(sent_id, Err(ClientError::Closed))]);
    assert!(matches!(
        effects.last(),
        Some(Effect::State(State::Closed {
            code: Some(1000),
            ..
        }))
    ));
    let (late, effects) = core.request("chat", &map(&json!({"room":"a","content":2})), None, 1);
    assert_eq!(settled(&effects), [(late, Err(ClientError::Closed))]);
    assert!(core.on_close(1006, "after", 2).is_empty());
    assert!(core.close().is_empty());
}

#[test]
fn giving_up_rejects_what_waits_and_says_why() {
    let mut core = open(options());
    core.on_close(1006, "gone", 0);
    let (queued, _) = core.request("chat", &map(&json!({"room":"a","content":1})), None, 1);
    let effects = core.give_up("getToken failed: offline");
    assert_eq!(settled(&effects), [(queued, Err(ClientError::Closed))]);
    assert_eq!(
        effects.last(),
        Some(&Effect::State(State::Closed {
            code: None,
            reason: "getToken failed: offline".into()
        }))
    );
    assert!(core.give_up("again").is_empty());
}

/// Joins `room` on an open core and has the server accept it.
fn joined(core: &mut Core, room: &str, now: Millis) {
    let (join, _) = core.request("join", &map(&json!({ "room": room })), None, now);
    let reply = json!({"type":"reply","id":join,"ok":true,"data":{"room":room,"recovered":false,"replayed":0}});
    assert_eq!(settled(&core.on_frame(&reply.to_string(), now)).len(), 1);
}

/// Drops the connection and reconnects; returns what `auth_ok` made the core send.
fn reconnected(core: &mut Core, now: Millis) -> Vec<Value> {
    core.on_close(1006, "gone", now);
    core.reconnect("t".into(), now);
    core.on_open(now);
    sent(&core.on_frame(&auth_ok(), now))
}

#[test]
fn each_rejoin_tells_the_app_whether_the_room_was_recovered_or_refused() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    joined(&mut core, "vip", 0);
    let rejoins = reconnected(&mut core, 1);
    assert_eq!(rejoins.len(), 2);
    let (lobby, vip) = (rejoins[0]["id"].clone(), rejoins[1]["id"].clone());
    assert_eq!(rejoins[0]["room"], "lobby");

    let ok = json!({"type":"reply","id":lobby,"ok":true,"data":{"room":"lobby","recovered":true,"replayed":2}});
    assert_eq!(
        emitted(&core.on_frame(&ok.to_string(), 2)),
        [json!({"type":"rejoined","room":"lobby","recovered":true,"replayed":2})]
    );
    let refused = json!({"type":"error","id":vip,"code":"forbidden","message":"members only"});
    assert_eq!(
        emitted(&core.on_frame(&refused.to_string(), 2)),
        [json!({"type":"rejoin_failed","room":"vip","code":"forbidden","message":"members only"})]
    );
    // The refused room is given up; the other is rejoined again next time.
    let rejoins = reconnected(&mut core, 3);
    assert_eq!(
        rejoins
            .iter()
            .map(|f| f["room"].clone())
            .collect::<Vec<_>>(),
        [json!("lobby")]
    );
}

#[test]
fn a_first_join_made_offline_is_not_announced_as_a_rejoin() {
    let mut core = core(options());
    let (join, _) = core.request("join", &map(&json!({"room":"lobby"})), None, 0);
    core.connect("t".into(), 0);
    core.on_open(0);
    let frames = sent(&core.on_frame(&auth_ok(), 0));
    let reply = json!({"type":"reply","id":frames[0]["id"],"ok":true,"data":{"room":"lobby","recovered":false,"replayed":0}});
    let effects = core.on_frame(&reply.to_string(), 1);
    assert!(emitted(&effects).is_empty(), "{effects:?}");
    assert_eq!(settled(&effects)[0].0, join);
}

#[test]
fn after_close_a_new_connect_starts_without_the_old_rooms() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    core.close();
    core.connect("t".into(), 1);
    core.on_open(1);
    assert!(sent(&core.on_frame(&auth_ok(), 1)).is_empty(), "no rejoin");
    // Its chats are now those of a room the client is not in: passed through as is.
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 1), 2)).len(), 1);
}

#[test]
fn chats_of_a_room_being_left_no_longer_reach_the_app() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 1), 1)).len(), 1);
    let (leave, _) = core.request("leave", &map(&json!({"room":"lobby"})), None, 1);
    // Sent by the server before it read the leave.
    assert!(emitted(&core.on_frame(&chat("lobby", 2), 1)).is_empty());
    assert_eq!(
        emitted(&core.on_frame(&chat("news", 1), 1)).len(),
        1,
        "other rooms are untouched"
    );
    let reply = json!({"type":"reply","id":leave,"ok":true,"data":{"room":"lobby"}});
    assert_eq!(settled(&core.on_frame(&reply.to_string(), 2)).len(), 1);
    // Once left, a chat of that room (the server put the client back in) passes again.
    assert_eq!(emitted(&core.on_frame(&chat("lobby", 3), 3)).len(), 1);
}

#[test]
fn a_join_without_an_answer_times_out_and_is_forgotten() {
    let mut core = open(options());
    let (join, _) = core.request("join", &map(&json!({"room":"lobby"})), Some(500), 0);
    assert_eq!(core.next_deadline(), Some(500));
    assert!(settled(&core.on_timer(499)).is_empty());
    assert_eq!(
        settled(&core.on_timer(500)),
        [(join, Err(ClientError::Timeout(500)))]
    );
    // A late answer settles nothing, and the room is not rejoined.
    let late = json!({"type":"reply","id":join,"ok":true,"data":{"room":"lobby"}});
    assert!(core.on_frame(&late.to_string(), 600).is_empty());
    assert!(reconnected(&mut core, 700).is_empty());
}

#[test]
fn a_join_made_offline_times_out_if_the_client_stays_offline() {
    let mut core = open(options());
    core.on_close(1006, "gone", 0);
    let (join, _) = core.request("join", &map(&json!({"room":"lobby"})), Some(500), 0);
    assert_eq!(
        settled(&core.on_timer(500)),
        [(join, Err(ClientError::Timeout(500)))]
    );
    core.reconnect("t".into(), 600);
    core.on_open(600);
    assert!(
        sent(&core.on_frame(&auth_ok(), 600)).is_empty(),
        "not joined after all"
    );
}

#[test]
fn a_room_joined_before_stays_joined_when_a_second_join_times_out() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    core.on_close(1006, "gone", 0);
    let (again, _) = core.request("join", &map(&json!({"room":"lobby"})), Some(100), 0);
    assert_eq!(
        settled(&core.on_timer(100)),
        [(again, Err(ClientError::Timeout(100)))]
    );
    core.reconnect("t".into(), 200);
    core.on_open(200);
    let rejoin = sent(&core.on_frame(&auth_ok(), 200));
    assert_eq!(rejoin.len(), 1);
    assert_eq!(rejoin[0]["room"], "lobby");
}

#[test]
fn after_auth_ok_the_rejoins_and_the_queue_go_out_before_the_app_hears_of_it() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    core.on_close(1006, "gone", 1);
    core.request("chat", &map(&json!({"room":"lobby","content":1})), None, 1);
    core.reconnect("t".into(), 2);
    core.on_open(2);
    let effects = core.on_frame(&auth_ok(), 2);
    let position = |wanted: &dyn Fn(&Effect) -> bool| effects.iter().position(wanted).unwrap();
    let rejoin = position(&|e| matches!(e, Effect::Send(f) if f.contains(r#""type":"join""#)));
    let queued = position(&|e| matches!(e, Effect::Send(f) if f.contains(r#""type":"chat""#)));
    let open = position(&|e| matches!(e, Effect::State(State::Open)));
    let hello = position(&|e| matches!(e, Effect::Emit(m) if m.kind == "auth_ok"));
    assert!(
        rejoin < queued && queued < open && open < hello,
        "{effects:?}"
    );
}

#[test]
fn a_refused_second_join_of_a_room_the_client_is_in_keeps_it() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    let (again, _) = core.request("join", &map(&json!({"room":"lobby"})), None, 1);
    let refused = json!({"type":"error","id":again,"code":"rate_limited","message":"slow down"});
    assert!(
        matches!(&settled(&core.on_frame(&refused.to_string(), 1))[..], [(i, Err(_))] if *i == again)
    );
    let rejoins = reconnected(&mut core, 2);
    assert_eq!(rejoins.len(), 1, "still in lobby");
}

#[test]
fn of_two_joins_on_their_way_one_refused_and_one_accepted_the_room_is_in() {
    let mut core = open(options());
    let (first, _) = core.request("join", &map(&json!({"room":"lobby"})), None, 0);
    let (second, _) = core.request("join", &map(&json!({"room":"lobby"})), None, 0);
    let refused = json!({"type":"error","id":first,"code":"rate_limited","message":"slow down"});
    core.on_frame(&refused.to_string(), 1);
    let ok = json!({"type":"reply","id":second,"ok":true,"data":{"room":"lobby","recovered":false,"replayed":0}});
    core.on_frame(&ok.to_string(), 1);
    assert_eq!(reconnected(&mut core, 2).len(), 1, "lobby is rejoined");
}

#[test]
fn a_rejoin_refused_for_a_passing_reason_is_tried_again_and_then_announced() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    let rejoin = reconnected(&mut core, 10);
    let busy = |id: &Value| {
        json!({"type":"error","id":id,"code":"rate_limited","message":"slow down"}).to_string()
    };
    let effects = core.on_frame(&busy(&rejoin[0]["id"]), 10);
    assert!(
        emitted(&effects).is_empty(),
        "not given up yet: {effects:?}"
    );
    assert_eq!(core.next_deadline(), Some(10 + REJOIN_RETRY_MS));
    assert!(sent(&core.on_timer(10 + REJOIN_RETRY_MS - 1)).is_empty());
    let retry = sent(&core.on_timer(10 + REJOIN_RETRY_MS));
    assert_eq!(retry.len(), 1);
    assert_eq!(
        (retry[0]["type"].as_str(), retry[0]["room"].as_str()),
        (Some("join"), Some("lobby"))
    );
    let ok = json!({"type":"reply","id":retry[0]["id"],"ok":true,"data":{"room":"lobby","recovered":true,"replayed":0}});
    assert_eq!(
        emitted(&core.on_frame(&ok.to_string(), 2_000)),
        [json!({"type":"rejoined","room":"lobby","recovered":true,"replayed":0})]
    );
}

#[test]
fn a_rejoin_that_keeps_failing_is_given_up_and_announced() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    let mut frame = reconnected(&mut core, 0).remove(0);
    let mut now = 0;
    for _ in 0..REJOIN_RETRIES {
        let busy =
            json!({"type":"error","id":frame["id"],"code":"rate_limited","message":"slow down"});
        assert!(emitted(&core.on_frame(&busy.to_string(), now)).is_empty());
        now += REJOIN_RETRY_MS;
        frame = sent(&core.on_timer(now)).remove(0);
    }
    let busy = json!({"type":"error","id":frame["id"],"code":"rate_limited","message":"slow down"});
    assert_eq!(
        emitted(&core.on_frame(&busy.to_string(), now)),
        [
            json!({"type":"rejoin_failed","room":"lobby","code":"rate_limited","message":"slow down"})
        ]
    );
    assert!(
        reconnected(&mut core, now + 1).is_empty(),
        "lobby is given up"
    );
}

#[test]
fn rooms_whose_join_was_cut_short_by_the_end_are_not_joined_by_a_later_connect() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    let (secret, _) = core.request("join", &map(&json!({"room":"secret"})), None, 0);
    let effects = core.on_close(4009, "limit", 1);
    assert!(settled(&effects).contains(&(secret, Err(ClientError::Closed))));
    core.connect("t".into(), 2);
    core.on_open(2);
    let rooms: Vec<Value> = sent(&core.on_frame(&auth_ok(), 2))
        .iter()
        .map(|f| f["room"].clone())
        .collect();
    assert_eq!(rooms, [json!("lobby")], "the accepted room only");
}

#[test]
fn a_join_of_a_room_left_before_the_connection_dropped_settles_at_the_drop() {
    let mut core = open(options());
    let (join, _) = core.request("join", &map(&json!({"room":"lobby"})), Some(60_000), 0);
    core.request("leave", &map(&json!({"room":"lobby"})), None, 0);
    let effects = core.on_close(1006, "gone", 1);
    assert!(
        settled(&effects).contains(&(join, Err(ClientError::Disconnected))),
        "{effects:?}"
    );
}

#[test]
fn a_rejoin_answered_after_the_app_left_the_room_is_not_announced() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    let rejoin = reconnected(&mut core, 1);
    core.request("leave", &map(&json!({"room":"lobby"})), None, 1);
    let ok = json!({"type":"reply","id":rejoin[0]["id"],"ok":true,"data":{"room":"lobby","recovered":true,"replayed":0}});
    assert!(emitted(&core.on_frame(&ok.to_string(), 2)).is_empty());
}

#[test]
fn chats_of_a_room_whose_leave_went_unanswered_stay_out() {
    let mut core = open(options());
    joined(&mut core, "lobby", 0);
    let (leave, _) = core.request("leave", &map(&json!({"room":"lobby"})), Some(100), 1);
    assert_eq!(
        settled(&core.on_timer(101)),
        [(leave, Err(ClientError::Timeout(100)))]
    );
    assert!(emitted(&core.on_frame(&chat("lobby", 1), 102)).is_empty());
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

#[test]
fn browser_timers_never_get_a_wait_they_would_read_as_negative() {
    assert_eq!(timer_delay(0), 0);
    assert_eq!(timer_delay(1_500), 1_500);
    assert_eq!(timer_delay(u64::MAX), 2_147_483_647);
    assert_eq!(timer_delay(3_000_000_000), 2_147_483_647);
}
