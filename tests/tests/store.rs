//! The `Store` conformance suite, part one: what the hub relies on from each store
//! method, written once against `Arc<dyn Store>` and run against every store we have (see
//! `stores!` in `store_common`). This file covers chat history (pages, `since`, ranges,
//! room positions, what round-trips) and durability: a store opened again keeps
//! everything and continues every sequence. The rest of part one: private messages and
//! notifications in `store_inbox.rs`, subscriptions and persistent rooms in
//! `store_state.rs`. Part two, `store_ids.rs`, is about the ids the store assigns: dense
//! per scope, in commit order, under concurrent writers. Every store implementation must
//! pass them all.

#[macro_use]
mod store_common;

use std::sync::Arc;

use anyhow::Result;
use roomcast_protocol::{Priority, User};
use roomcast_server::store::{self, Store};
use serde_json::{Map, Value, json};
use store_common::*;

// ---------------------------------------------------------------------------------------
// Chat
// ---------------------------------------------------------------------------------------

async fn chat_history_returns_the_newest_oldest_first(store: Arc<dyn Store>) -> Result<()> {
    let stored = append_chats(&*store, "lobby", 1..=5).await;
    let lobby = room("lobby");

    assert_eq!(
        numbers(&stored),
        [1, 2, 3, 4, 5],
        "a new room's ids count from 1"
    );
    assert_eq!(store.chat_history(&lobby, 3, None).await?, stored[2..]);
    assert_eq!(
        store.chat_history(&lobby, 100, None).await?,
        stored,
        "a limit above the count returns everything"
    );
    assert!(
        store
            .chat_history(&room("empty"), 10, None)
            .await?
            .is_empty()
    );
    Ok(())
}

async fn chat_history_pages_strictly_before(store: Arc<dyn Store>) -> Result<()> {
    append_chats(&*store, "lobby", 1..=7).await;
    let lobby = room("lobby");

    assert_eq!(
        numbers(&store.chat_history(&lobby, 2, Some(&id(5))).await?),
        [3, 4],
        "the newest two strictly older than 5"
    );
    assert!(
        store
            .chat_history(&lobby, 10, Some(&id(1)))
            .await?
            .is_empty()
    );
    assert_eq!(
        numbers(&store.chat_history(&lobby, 10, Some(&id(100))).await?),
        [1, 2, 3, 4, 5, 6, 7],
        "`before` need not be a stored id"
    );

    // Paging backwards from the newest, as a client scrolling up does, sees each once.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.chat_history(&lobby, 3, before.as_ref()).await?;
        let Some(oldest) = page.first() else { break };
        before = Some(oldest.id.clone());
        seen.splice(0..0, numbers(&page));
    }
    assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7]);
    Ok(())
}

async fn chat_history_is_per_room(store: Arc<dyn Store>) -> Result<()> {
    // Interleaved, so both rooms hold the same ids: (room, id) is the key.
    for n in 1..=5 {
        let name = if n % 2 == 0 { "even" } else { "odd" };
        store.append_chat(&chat(name, n, json!(n))).await?;
    }

    let odd = store.chat_history(&room("odd"), 10, None).await?;
    assert_eq!(numbers(&odd), [1, 2, 3]);
    assert_eq!(
        odd.iter().map(|c| c.message.clone()).collect::<Vec<_>>(),
        [json!(1), json!(3), json!(5)]
    );
    assert!(odd.iter().all(|c| c.room == room("odd")), "{odd:?}");
    let even = store.chat_history(&room("even"), 10, None).await?;
    assert_eq!(numbers(&even), [1, 2]);
    assert_eq!(
        even.iter().map(|c| c.message.clone()).collect::<Vec<_>>(),
        [json!(2), json!(4)],
        "odd's 1 and 2 did not overwrite even's"
    );
    let since = store.chat_since(&room("odd"), &id(1), 10).await?;
    assert_eq!(
        since.iter().map(|c| c.message.clone()).collect::<Vec<_>>(),
        [json!(3), json!(5)]
    );
    Ok(())
}

async fn chat_since_returns_the_newest_strictly_newer(store: Arc<dyn Store>) -> Result<()> {
    append_chats(&*store, "lobby", 1..=6).await;
    append_chats(&*store, "other", 7..=9).await;
    let lobby = room("lobby");

    assert_eq!(
        numbers(&store.chat_since(&lobby, &id(2), 100).await?),
        [3, 4, 5, 6]
    );
    assert_eq!(
        numbers(&store.chat_since(&lobby, &id(2), 2).await?),
        [5, 6],
        "the newest `limit` of them, oldest first"
    );
    assert!(
        store.chat_since(&lobby, &id(6), 100).await?.is_empty(),
        "nothing is newer than the newest"
    );
    assert_eq!(
        numbers(&store.chat_since(&lobby, &id(0), 100).await?),
        [1, 2, 3, 4, 5, 6],
        "`since` need not be a stored id"
    );
    Ok(())
}

async fn chat_range_returns_the_oldest_after_through(store: Arc<dyn Store>) -> Result<()> {
    append_chats(&*store, "lobby", 1..=8).await;
    append_chats(&*store, "other", 9..=10).await;
    let lobby = room("lobby");

    assert_eq!(
        numbers(&store.chat_range(&lobby, &id(2), Some(&id(6)), 100).await?),
        [3, 4, 5, 6],
        "`after` is excluded, `through` included"
    );
    assert_eq!(
        numbers(&store.chat_range(&lobby, &id(2), Some(&id(6)), 2).await?),
        [3, 4],
        "the oldest `limit` of them (`chat_since` keeps the newest)"
    );
    assert_eq!(
        numbers(&store.chat_range(&lobby, &id(5), None, 100).await?),
        [6, 7, 8],
        "no upper bound without `through`"
    );
    assert!(
        store
            .chat_range(&lobby, &id(6), Some(&id(6)), 10)
            .await?
            .is_empty()
    );
    assert!(
        store
            .chat_range(&lobby, &id(6), Some(&id(3)), 10)
            .await?
            .is_empty(),
        "an empty range"
    );
    assert_eq!(
        numbers(
            &store
                .chat_range(&lobby, &id(0), Some(&id(100)), 100)
                .await?
        ),
        [1, 2, 3, 4, 5, 6, 7, 8],
        "bounds need not be stored ids"
    );
    assert_eq!(
        numbers(&store.chat_range(&room("other"), &id(0), None, 10).await?),
        [1, 2],
        "per room"
    );
    assert_eq!(
        store.chat_range(&lobby, &id(0), None, 100).await?,
        store.chat_history(&lobby, 100, None).await?,
        "the same messages as the history, whole"
    );

    // Reading forward from a position, as a node repairing a gap does, sees each once.
    let (mut seen, mut after) = (Vec::new(), id(0));
    loop {
        let page = store.chat_range(&lobby, &after, None, 3).await?;
        let Some(newest) = page.last() else { break };
        after = newest.id.clone();
        seen.extend(numbers(&page));
    }
    assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
    Ok(())
}

async fn room_positions_are_each_rooms_newest_id(store: Arc<dyn Store>) -> Result<()> {
    assert!(store.room_positions(&[]).await?.is_empty());
    append_chats(&*store, "b", 1..=3).await;
    append_chats(&*store, "a", 4..=4).await;
    append_chats(&*store, "unasked", 5..=6).await;

    let asked = [room("b"), room("empty"), room("a"), room("b")];
    assert_eq!(
        store.room_positions(&asked).await?,
        [(room("a"), id(1)), (room("b"), id(3))],
        "by name, once each; a room without chats is absent"
    );
    append_chats(&*store, "a", 7..=8).await;
    assert_eq!(
        store.room_positions(&[room("a")]).await?,
        [(room("a"), id(3))],
        "the newest, as it moves"
    );
    assert!(store.room_positions(&[room("empty")]).await?.is_empty());
    Ok(())
}

async fn chat_content_and_sender_round_trip(store: Arc<dyn Store>) -> Result<()> {
    let contents = [
        json!({ "text": "hi", "mentions": ["bob"], "meta": { "edited": false, "n": null } }),
        json!("plain string with \"quotes\", \\ and a newline\n"),
        json!(42),
        json!(-7),
        json!(1.5),
        json!(u64::MAX),
        json!(true),
        json!(null),
        json!([1, "two", [3, { "four": [] }], {}]),
        json!({ "héllo": "wörld ✓", "emoji": "🎉👩‍👩‍👧", "cjk": "聊天室", "rtl": "שלום" }),
        // Any JSON string is content, even one with a NUL in it (which PostgreSQL's
        // JSONB and TEXT reject).
        json!({ "nul": "a\u{0}b" }),
        // Keys in no particular order, and twice the same number in two spellings.
        json!({ "z": 1, "a": 2, "m": [1e3, 1000] }),
    ];
    let mut stored = Vec::new();
    for (n, message) in (1..).zip(contents) {
        let mut item = chat("round-trip ✓", n, message);
        let Value::Object(info) = json!({
            "nested": { "list": [1, 2, { "deep": "yes" }] },
            "unicode": "Zoë 🚀",
            "n": n,
        }) else {
            unreachable!("an object literal");
        };
        item.from = User::new(
            user(&format!("ü-{n}")),
            Some("Zoë Ünïcode".to_owned()),
            vec!["admin".to_owned(), "mod ★".to_owned()],
            info,
        );
        let returned = store.append_chat(&item).await?;
        assert_eq!(
            returned,
            item.stored(id(n)),
            "the append returns what it stored"
        );
        stored.push(returned);
    }
    // A sender with no name, roles or info stays without them.
    let mut bare = chat("round-trip ✓", 99, json!("bare"));
    bare.from = User::new(user("bare"), None, Vec::new(), Map::new());
    stored.push(store.append_chat(&bare).await?);

    let history = store.chat_history(&room("round-trip ✓"), 100, None).await?;
    assert_eq!(history, stored);
    Ok(())
}

async fn appends_return_what_was_stored(store: Arc<dyn Store>) -> Result<()> {
    // The same message twice is two messages: every append takes a new id, and none
    // replaces an earlier one.
    let same = chat("lobby", 1, json!("twice"));
    let first = store.append_chat(&same).await?;
    let second = store.append_chat(&same).await?;
    assert_eq!((first.id.clone(), second.id.clone()), (id(1), id(2)));
    assert_eq!(
        first,
        same.stored(id(1)),
        "every field as given, plus the id"
    );
    assert_eq!(
        store.chat_history(&room("lobby"), 10, None).await?,
        [first, second]
    );

    let private = private("bob", 1);
    let stored = store.append_private(&private, false).await?;
    assert_eq!(stored, private.stored(id(1)));
    assert_eq!(store.take_pending_private(&user("bob")).await?, [stored]);

    let mut notification = notification("bob", 2);
    notification.priority = Priority::Urgent;
    let stored = store.append_notification(&notification, false).await?;
    assert_eq!(stored, notification.stored(id(2)));
    assert_eq!(
        store.notifications(&user("bob"), false, 10).await?,
        [stored]
    );

    let global = global(1);
    let stored = store.append_global(&global).await?;
    assert_eq!(stored, global.stored(id(1)));
    assert_eq!(store.global_notifications(10).await?, [stored]);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Durability (stores whose URL can be opened again)
// ---------------------------------------------------------------------------------------

async fn reopening_keeps_everything(backend: Backend) -> Result<()> {
    let (alice, bob) = (user("alice"), user("bob"));
    let (first, logged) = {
        let store = backend.open().await?;
        let first = store
            .append_chat(&chat("lobby", 1, json!({ "text": "before the restart" })))
            .await?;
        store
            .append_chat(&chat("lobby", 2, json!("second")))
            .await?;

        store.append_private(&private("bob", 1), false).await?;
        assert_eq!(numbers(&store.take_pending_private(&bob).await?), [1]);
        store.append_private(&private("bob", 2), false).await?;

        store
            .append_notification(&notification("alice", 1), false)
            .await?;
        assert_eq!(
            numbers(&store.take_pending_notifications(&alice).await?),
            [1]
        );
        store
            .append_notification(&notification("alice", 2), false)
            .await?;
        store
            .append_notification(&notification("alice", 3), false)
            .await?;
        assert!(store.mark_read(&alice, &id(3)).await?);

        let logged = store.append_global(&global(1)).await?;
        store
            .set_subscription(&alice, "weather", &keys(&["oslo"]))
            .await?;
        store.save_room(&room("staff"), &staff_room()).await?;
        (first, logged)
    };

    let store = backend.open().await?;
    assert_eq!(
        store.chat_history(&room("lobby"), 10, None).await?[0],
        first
    );
    assert_eq!(
        numbers(&store.chat_since(&room("lobby"), &id(1), 10).await?),
        [2]
    );
    assert_eq!(
        numbers(&store.take_pending_private(&bob).await?),
        [2],
        "the private taken before the restart is not taken again"
    );
    assert_eq!(
        numbers(&store.take_pending_notifications(&alice).await?),
        [2],
        "delivered and read notifications stay so"
    );
    let listed = store.notifications(&alice, false, 10).await?;
    assert_eq!(
        listed
            .iter()
            .map(|n| (n.read, n.priority))
            .collect::<Vec<_>>(),
        [
            (true, Priority::Normal),
            (false, Priority::Normal),
            (false, Priority::Normal)
        ]
    );
    assert_eq!(store.global_notifications(10).await?, [logged]);
    assert_eq!(
        store.subscriptions(&alice).await?,
        [("weather".to_owned(), keys(&["oslo"]))]
    );
    assert_eq!(store.rooms().await?, [(room("staff"), staff_room())]);

    // Every sequence continues where it was: no id given before the restart is given
    // again.
    let ids = [
        store
            .append_chat(&chat("lobby", 3, json!("after")))
            .await?
            .id,
        store.append_private(&private("bob", 3), false).await?.id,
        store
            .append_notification(&notification("alice", 4), false)
            .await?
            .id,
        store.append_global(&global(2)).await?.id,
    ];
    assert_eq!(ids, [id(3), id(3), id(4), id(2)]);
    Ok(())
}

#[tokio::test]
async fn open_rejects_an_unknown_scheme() {
    let opened = store::open("mysql://root:secret@localhost/roomcast").await;
    let Err(error) = opened else {
        panic!("opened {opened:?}");
    };
    let message = error.to_string();
    assert!(
        message.contains("\"mysql\"") && message.contains("postgres://"),
        "names the scheme and what is supported: {message}"
    );
    assert!(
        !message.contains("secret"),
        "never echoes the URL: {message}"
    );
}

// ---------------------------------------------------------------------------------------
// Every test against every store
// ---------------------------------------------------------------------------------------

stores! {
    suite: [
        chat_history_returns_the_newest_oldest_first,
        chat_history_pages_strictly_before,
        chat_history_is_per_room,
        chat_since_returns_the_newest_strictly_newer,
        chat_range_returns_the_oldest_after_through,
        room_positions_are_each_rooms_newest_id,
        chat_content_and_sender_round_trip,
        appends_return_what_was_stored,
    ],
    durable: [reopening_keeps_everything],
}
