//! The SDK across a restart of the server process (a test binary of its own, so the
//! restart cannot disturb the other browser tests). Run by `scripts/browser-test.sh`.

#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use serde_json::{Value, json};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

// One test, so the two restarts cannot overlap (tests in one page run concurrently).
#[wasm_bindgen_test]
async fn clients_survive_a_restart_and_a_crash_of_the_server_seeing_each_chat_once() {
    survive("/restart").await;
    // SIGKILL: the sockets drop with no close frame (1006 in the browser).
    survive("/crash").await;
}

/// Two clients chat, the harness restarts the server the way `how` says, and both carry
/// on: reconnected, rejoined, and each chat seen once.
async fn survive(how: &str) {
    let lobby = room("restart");
    let (alice, alice_chats, alice_states) = connected(&unique("alice")).await;
    let (bob, _, _) = connected(&unique("bob")).await;
    let alice_rejoins = Recorder::new();
    alice.on("rejoined", alice_rejoins.function().clone());
    settle(alice.join(&lobby)).await.expect("alice joins");
    settle(bob.join(&lobby)).await.expect("bob joins");
    let before = settle(bob.chat(&lobby, &"before".into()))
        .await
        .expect("chat");
    eventually("alice has the first chat", || alice_chats.all().len() == 1).await;

    control("POST", how, None).await;

    eventually("alice reconnected", || {
        let states = alice_states.all();
        states.iter().any(|s| s["state"] == "reconnecting")
            && states.last().is_some_and(|s| s["state"] == "open")
    })
    .await;
    // The app hears how its room came back: the stored history covered the gap.
    eventually("alice is told her room was recovered", || {
        alice_rejoins.all()
            == [json!({"type": "rejoined", "room": lobby, "recovered": true, "replayed": 0})]
    })
    .await;
    // Bob's chat may race his own reconnect: it waits in his queue and goes out after it.
    let after = settle(bob.chat(&lobby, &"after".into()))
        .await
        .expect("chat after restart");
    eventually("alice has the second chat", || alice_chats.all().len() >= 2).await;
    let ids: Vec<Value> = alice_chats.all().iter().map(|c| c["id"].clone()).collect();
    assert_eq!(
        ids,
        [before["id"].clone(), after["id"].clone()],
        "each once, in order"
    );
    assert_eq!(alice_chats.all()[1]["message"], json!("after"));
    alice.close();
    bob.close();
}
