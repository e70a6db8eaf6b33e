//! The connection's lifecycle: connecting and authenticating, the close codes that end it
//! and the backoff between attempts, the heartbeat watchdog, `close()` and `give_up()`,
//! and the browser timer's limit.

use super::*;

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

#[test]
fn browser_timers_never_get_a_wait_they_would_read_as_negative() {
    assert_eq!(timer_delay(0), 0);
    assert_eq!(timer_delay(1_500), 1_500);
    assert_eq!(timer_delay(u64::MAX), 2_147_483_647);
    assert_eq!(timer_delay(3_000_000_000), 2_147_483_647);
}
