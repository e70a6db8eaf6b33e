//! The SDK in a real browser (headless Chromium, through wasm-bindgen-test) against a real
//! `roomcast` server that `scripts/browser-test.sh` starts on a free port. Run that script
//! (the README's test command does): these tests need the server's URL at compile time.

#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use gloo_timers::future::TimeoutFuture;
use js_sys::Object;
use roomcast_client::RoomcastClient;
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn two_clients_chat_and_requests_resolve_with_the_reply() {
    let (alice, alice_chats, _) = connected(&unique("alice")).await;
    let (bob, _, _) = connected(&unique("bob")).await;
    let lobby = room("lobby");
    let joined = settle(alice.join(&lobby)).await.expect("join");
    assert_eq!(joined["room"], lobby.as_str());
    settle(bob.join(&lobby)).await.expect("join");
    let sent = settle(bob.chat(&lobby, &"hello".into()))
        .await
        .expect("chat");
    eventually("alice gets bob's chat", || !alice_chats.all().is_empty()).await;
    let chat = &alice_chats.all()[0];
    assert_eq!(chat["message"], "hello");
    assert!(
        chat["from"]["userId"]
            .as_str()
            .unwrap_or_default()
            .starts_with("bob-"),
        "{chat}"
    );
    assert_eq!(chat["id"], sent["id"]);
    alice.close();
    bob.close();
}

#[wasm_bindgen_test]
async fn members_pages_through_a_rooms_users_by_id() {
    let hall = room("hall");
    let mut clients = Vec::new();
    let mut ids = Vec::new();
    for name in ["cy", "ada", "bea"] {
        let (client, _, _) = connected(&unique(name)).await;
        settle(client.join(&hall)).await.expect("join");
        clients.push(client);
    }
    let paging = Object::new();
    set(&paging, "limit", &2.into());
    let mut pages = 0;
    loop {
        let page = settle(clients[0].members(&hall, &paging))
            .await
            .expect("members");
        pages += 1;
        assert_eq!(page["count"], 3, "{page}");
        for item in page["items"].as_array().expect("items") {
            ids.push(item["userId"].as_str().expect("userId").to_owned());
        }
        match page["next"].as_str() {
            Some(next) => set(&paging, "after", &next.into()),
            None => break,
        }
    }
    assert_eq!(pages, 2);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "by id");
    assert_eq!(ids.len(), 3, "each once: {ids:?}");
    // No options: the default page holds everyone.
    let all = settle(clients[1].members(&hall, &JsValue::UNDEFINED))
        .await
        .expect("members");
    assert_eq!(all["items"].as_array().map(Vec::len), Some(3), "{all}");
    assert!(all.get("next").is_none(), "{all}");
    for client in clients {
        client.close();
    }
}

#[wasm_bindgen_test]
async fn server_errors_reject_with_their_code() {
    let (alice, _, _) = connected(&unique("alice")).await;
    let error = settle(alice.chat(&room("nowhere"), &"hi".into()))
        .await
        .unwrap_err();
    assert_eq!(error["code"], "not_member", "{error}");
    let error = settle(alice.request("no_such_type", &JsValue::NULL, &JsValue::NULL))
        .await
        .unwrap_err();
    assert_eq!(error["code"], "bad_request", "{error}");
    // Refused locally: the protocol has no such message.
    let error = settle(alice.join("")).await.unwrap_err();
    assert_eq!(error["code"], "bad_request", "{error}");
    alice.close();
}

#[wasm_bindgen_test]
async fn a_bad_token_rejects_connect_and_closes_with_4001_without_reconnecting() {
    let client = RoomcastClient::new(URL, &options("not-a-jwt")).expect("client");
    let states = Recorder::new();
    client.on_state_change(states.function().clone());
    assert!(settle(client.connect()).await.is_err());
    let last = states.all().last().cloned().unwrap_or_default();
    assert_eq!(last["state"], "closed", "{:?}", states.all());
    assert_eq!(last["code"], 4001, "{:?}", states.all());
    TimeoutFuture::new(500).await;
    assert!(
        !states.all().iter().any(|s| s["state"] == "reconnecting"),
        "{:?}",
        states.all()
    );
}

#[wasm_bindgen_test]
async fn heartbeats_are_answered_so_the_connection_stays_open() {
    // The test server pings every 300 ms and gives up 500 ms after an unanswered ping.
    let (alice, _, states) = connected(&unique("alice")).await;
    TimeoutFuture::new(2_000).await;
    assert_eq!(
        states.all().last().unwrap()["state"],
        "open",
        "{:?}",
        states.all()
    );
    assert_eq!(
        states.all().len(),
        2,
        "connecting, open, nothing else: {:?}",
        states.all()
    );
    let pong = settle(alice.request("ping", &JsValue::NULL, &JsValue::NULL)).await;
    assert!(pong.is_ok(), "{pong:?}");
    alice.close();
}

#[wasm_bindgen_test]
async fn large_messages_arrive_compressed_and_are_inflated() {
    let (alice, alice_chats, _) = connected(&unique("alice")).await;
    let lobby = room("big");
    settle(alice.join(&lobby)).await.expect("join");
    let text = "compress me ".repeat(200);
    settle(alice.chat(&lobby, &text.as_str().into()))
        .await
        .expect("chat");
    eventually("the chat comes back", || !alice_chats.all().is_empty()).await;
    assert_eq!(alice_chats.all()[0]["message"], text.as_str());
    alice.close();
}

#[wasm_bindgen_test]
async fn the_per_user_limit_closes_with_4009_for_good() {
    let user = unique("crowd");
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connected(&user).await);
    }
    let extra = RoomcastClient::new(URL, &options(&token(&user, 600))).expect("client");
    let states = Recorder::new();
    extra.on_state_change(states.function().clone());
    let error = settle(extra.connect()).await.unwrap_err();
    assert_eq!(error["code"], "closed", "{error}");
    let last = states.all().last().cloned().unwrap_or_default();
    assert_eq!(last["code"], 4009, "{:?}", states.all());
    for (client, _, _) in clients {
        client.close();
    }
}

#[wasm_bindgen_test]
async fn after_the_token_expires_get_token_reconnects_and_the_room_loses_and_repeats_nothing() {
    let lobby = room("busy");
    let (bob, _, _) = connected(&unique("bob")).await;
    settle(bob.join(&lobby)).await.expect("bob joins");

    let (source, calls) = expiring_token_source(&unique("alice"), 2);
    let options = base_options();
    set(&options, "getToken", source.as_ref());
    let alice = RoomcastClient::new(URL, &options).expect("client");
    let chats = Recorder::new();
    let states = Recorder::new();
    alice.on("chat", chats.function().clone());
    alice.on_state_change(states.function().clone());
    settle(alice.connect()).await.expect("alice connects");
    settle(alice.join(&lobby)).await.expect("alice joins");

    // Bob chats steadily for 4 s while alice's 2 s token expires (the server closes her
    // with 4001), `getToken` gives a fresh one, and she rejoins from her last chat.
    let mut sent = Vec::new();
    for n in 0..40 {
        let reply = settle(bob.chat(&lobby, &JsValue::from(n)))
            .await
            .expect("bob chats");
        sent.push(reply["id"].clone());
        TimeoutFuture::new(100).await;
    }
    eventually("alice has every chat", || chats.all().len() >= sent.len()).await;
    TimeoutFuture::new(300).await;
    let received: Vec<Value> = chats.all().iter().map(|c| c["id"].clone()).collect();
    assert_eq!(received, sent, "every chat exactly once, in order");
    assert!(*calls.borrow() >= 2, "getToken was asked again");
    assert!(
        states.all().iter().any(|s| s["state"] == "reconnecting"),
        "{:?}",
        states.all()
    );
    assert_eq!(states.all().last().unwrap()["state"], "open");
    alice.close();
    bob.close();
}

#[wasm_bindgen_test]
async fn requests_made_while_reconnecting_are_sent_in_order_after_reconnect() {
    let lobby = room("queue");
    let (bob, bob_chats, _) = connected(&unique("bob")).await;
    settle(bob.join(&lobby)).await.expect("bob joins");
    let (source, _) = expiring_token_source(&unique("alice"), 2);
    let options = base_options();
    set(&options, "getToken", source.as_ref());
    // A slow reconnect, so there is time to queue.
    let reconnect: JsValue = Object::new().into();
    set(&reconnect, "initialDelayMs", &800.into());
    set(&reconnect, "jitter", &false.into());
    set(&options, "reconnect", &reconnect);
    let alice = RoomcastClient::new(URL, &options).expect("client");
    let states = Recorder::new();
    alice.on_state_change(states.function().clone());
    settle(alice.connect()).await.expect("alice connects");
    settle(alice.join(&lobby)).await.expect("alice joins");
    eventually("alice's token expired", || {
        states.all().iter().any(|s| s["state"] == "reconnecting")
    })
    .await;
    let first = alice.chat(&lobby, &"queued 1".into());
    let second = alice.chat(&lobby, &"queued 2".into());
    assert!(settle(first).await.is_ok());
    assert!(settle(second).await.is_ok());
    eventually("bob gets both", || bob_chats.all().len() >= 2).await;
    let texts: Vec<Value> = bob_chats
        .all()
        .iter()
        .map(|c| c["message"].clone())
        .collect();
    assert_eq!(texts, [json!("queued 1"), json!("queued 2")]);
    alice.close();
    bob.close();
}

/// A client connected as a fresh user that records `auth_ok` (for its client id) and the
/// messages of `kind`.
async fn recording(kind: &str) -> (RoomcastClient, Recorder, String) {
    let client = RoomcastClient::new(URL, &options(&token(&unique("app"), 600))).expect("client");
    let seen = Recorder::new();
    let welcome = Recorder::new();
    client.on(kind, seen.function().clone());
    client.on("auth_ok", welcome.function().clone());
    settle(client.connect()).await.expect("connects");
    let client_id = welcome.all()[0]["clientId"]
        .as_str()
        .expect("clientId")
        .to_owned();
    (client, seen, client_id)
}

#[wasm_bindgen_test]
async fn batches_are_unpacked_into_their_messages_in_order() {
    let (client, ticks, _) = recording("tick").await;
    let ticker = room("ticker");
    settle(client.join(&ticker)).await.expect("join");
    for n in 0..5 {
        let body = json!({ "to": { "room": ticker }, "message": { "type": "tick", "n": n }, "batch": true });
        let answer = control("POST", "/api/broadcast", Some(body)).await;
        assert_eq!(answer["batched"], true, "{answer}");
    }
    eventually("the batch arrives", || ticks.all().len() >= 5).await;
    let order: Vec<Value> = ticks.all().iter().map(|t| t["n"].clone()).collect();
    assert_eq!(order, [json!(0), json!(1), json!(2), json!(3), json!(4)]);
    client.close();
}

#[wasm_bindgen_test]
async fn messages_asking_for_an_ack_are_acknowledged_after_the_handler_ran() {
    let (client, orders, client_id) = recording("order").await;
    let body = json!({ "clientId": client_id, "message": { "type": "order", "item": 7 }, "ack": true, "timeoutMs": 5000 });
    let answer = control("POST", "/api/send", Some(body)).await;
    assert_eq!(
        answer["results"][&client_id],
        json!({ "success": true }),
        "{answer}"
    );
    let seen = orders.all();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["item"], 7);
    assert_eq!(seen[0]["_ack"], true);
    client.close();
}

#[wasm_bindgen_test]
async fn a_full_offline_queue_rejects_the_newest_request_with_queue_full() {
    let (source, _) = expiring_token_source(&unique("alice"), 2);
    let options = base_options();
    set(&options, "getToken", source.as_ref());
    set(&options, "offlineQueueLimit", &2.into());
    let reconnect: JsValue = Object::new().into();
    set(&reconnect, "initialDelayMs", &1_000.into());
    set(&reconnect, "jitter", &false.into());
    set(&options, "reconnect", &reconnect);
    let alice = RoomcastClient::new(URL, &options).expect("client");
    let states = Recorder::new();
    alice.on_state_change(states.function().clone());
    settle(alice.connect()).await.expect("connects");
    eventually("the short token expired", || {
        states.all().iter().any(|s| s["state"] == "reconnecting")
    })
    .await;
    let first = alice.request("ping", &JsValue::NULL, &JsValue::NULL);
    let second = alice.request("ping", &JsValue::NULL, &JsValue::NULL);
    let third = settle(alice.request("ping", &JsValue::NULL, &JsValue::NULL)).await;
    assert_eq!(third.unwrap_err()["code"], "queue_full");
    assert!(
        settle(first).await.is_ok(),
        "queued requests go out after reconnect"
    );
    assert!(settle(second).await.is_ok());
    alice.close();
}

#[wasm_bindgen_test]
async fn a_failing_get_token_ends_the_client_with_its_reason() {
    let calls = std::rc::Rc::new(std::cell::Cell::new(0));
    let counter = calls.clone();
    let user = unique("alice");
    let source = Closure::<dyn FnMut() -> JsValue>::new(move || {
        counter.set(counter.get() + 1);
        if counter.get() == 1 {
            // Expires within 2 s: the server closes with 4001 and the SDK asks again.
            JsValue::from(token(&user, 2))
        } else {
            js_sys::Function::new_no_args("throw new Error('token service down')")
                .call0(&JsValue::NULL)
                .unwrap_or_else(|err| err)
        }
    });
    // A `getToken` that throws on its second call.
    let throwing = js_sys::Function::new_with_args(
        "inner",
        "return function () { const v = inner(); if (v instanceof Error) { throw v; } return v; }",
    )
    .call1(&JsValue::NULL, source.as_ref())
    .expect("wrapper");
    let options = base_options();
    set(&options, "getToken", &throwing);
    let alice = RoomcastClient::new(URL, &options).expect("client");
    let states = Recorder::new();
    alice.on_state_change(states.function().clone());
    settle(alice.connect())
        .await
        .expect("connects with the first token");
    eventually("the client gave up", || {
        states.all().last().is_some_and(|s| s["state"] == "closed")
    })
    .await;
    let last = states.all().last().cloned().unwrap_or_default();
    assert!(
        last["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("token service down"),
        "{last}"
    );
    assert!(calls.get() >= 2);
}

#[wasm_bindgen_test]
async fn close_right_after_connect_rejects_it_and_opens_no_socket() {
    let user = unique("quitter");
    let client = RoomcastClient::new(URL, &options(&token(&user, 600))).expect("client");
    let states = Recorder::new();
    client.on_state_change(states.function().clone());
    let connecting = client.connect();
    client.close();
    let error = settle(connecting).await.unwrap_err();
    assert_eq!(error["code"], "closed", "{error}");
    TimeoutFuture::new(500).await;
    assert!(
        !states
            .all()
            .iter()
            .any(|s| s["state"] == "connecting" || s["state"] == "open"),
        "{:?}",
        states.all()
    );
    let connections = control("GET", "/api/connections", None).await;
    let mine = connections["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|c| c["user"]["userId"] == user.as_str())
        .count();
    assert_eq!(mine, 0, "{connections}");
}
