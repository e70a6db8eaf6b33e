//! The `Store` conformance suite, part one: what the hub relies on from each store
//! method, written once against `Arc<dyn Store>` and run against every store we have (see
//! `stores!` in `store_common`). Part two, `store_ids.rs`, is about the ids the store
//! assigns: dense per scope, in commit order, under concurrent writers. Every store
//! implementation must pass both.

#[macro_use]
mod store_common;

use std::sync::Arc;

use anyhow::Result;
use roomcast_protocol::{Priority, RoomName, User};
use roomcast_server::hub::RoomOptions;
use roomcast_server::store::{self, Store};
use serde_json::{Map, Value, json};
use store_common::*;

fn keys(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|&k| k.to_owned()).collect()
}

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
// Private messages
// ---------------------------------------------------------------------------------------

async fn pending_privates_are_taken_once_oldest_first(store: Arc<dyn Store>) -> Result<()> {
    let bob = user("bob");
    let mut stored = Vec::new();
    for n in 1..=3 {
        stored.push(store.append_private(&private("bob", n), false).await?);
    }

    let taken = store.take_pending_private(&bob).await?;
    assert_eq!(numbers(&taken), [1, 2, 3]);
    assert_eq!(taken, stored, "every field round-trips");
    assert!(
        store.take_pending_private(&bob).await?.is_empty(),
        "taken once"
    );

    store.append_private(&private("bob", 4), false).await?;
    assert_eq!(
        numbers(&store.take_pending_private(&bob).await?),
        [4],
        "only what arrived since the last take"
    );
    Ok(())
}

async fn delivered_privates_are_never_taken(store: Arc<dyn Store>) -> Result<()> {
    let bob = user("bob");
    store.append_private(&private("bob", 1), true).await?;
    store.append_private(&private("bob", 2), false).await?;
    store.append_private(&private("bob", 3), true).await?;

    assert_eq!(numbers(&store.take_pending_private(&bob).await?), [2]);
    assert!(store.take_pending_private(&bob).await?.is_empty());
    Ok(())
}

async fn marking_a_private_delivered_removes_it_from_pending(store: Arc<dyn Store>) -> Result<()> {
    let bob = user("bob");
    for n in 1..=3 {
        store.append_private(&private("bob", n), false).await?;
    }
    store.mark_private_delivered(&bob, &id(2)).await?;
    // Marking another user's message, or an unknown one, changes nothing here.
    store.mark_private_delivered(&user("carol"), &id(1)).await?;
    store.mark_private_delivered(&bob, &id(99)).await?;

    assert_eq!(numbers(&store.take_pending_private(&bob).await?), [1, 3]);
    Ok(())
}

async fn pending_privates_are_per_user(store: Arc<dyn Store>) -> Result<()> {
    // Interleaved, so both recipients hold the same ids: (recipient, id) is the key.
    for n in 1..=2 {
        store.append_private(&private("bob", n), false).await?;
        store.append_private(&private("carol", n), false).await?;
    }
    store.append_private(&private("carol", 3), false).await?;

    let bobs = store.take_pending_private(&user("bob")).await?;
    assert_eq!(numbers(&bobs), [1, 2]);
    assert!(bobs.iter().all(|p| p.to == user("bob")), "{bobs:?}");
    let carols = store.take_pending_private(&user("carol")).await?;
    assert_eq!(
        numbers(&carols),
        [1, 2, 3],
        "bob's take left carol's pending"
    );
    assert!(carols.iter().all(|p| p.to == user("carol")), "{carols:?}");
    assert!(store.take_pending_private(&user("dave")).await?.is_empty());
    Ok(())
}

/// How many takes race for the same user's pending messages.
const RACERS: usize = 8;

async fn concurrent_takes_deliver_each_private_once(store: Arc<dyn Store>) -> Result<()> {
    let total = 200;
    for n in 1..=total {
        store.append_private(&private("bob", n), false).await?;
    }

    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..RACERS {
        let store = Arc::clone(&store);
        racers.spawn(async move { store.take_pending_private(&user("bob")).await });
    }
    let mut taken = Vec::new();
    while let Some(result) = racers.join_next().await {
        let batch = result??;
        assert!(
            numbers(&batch).is_sorted(),
            "each take is oldest first: {:?}",
            numbers(&batch)
        );
        taken.extend(numbers(&batch));
    }

    taken.sort_unstable();
    assert_eq!(
        taken,
        (1..=total).collect::<Vec<_>>(),
        "every message taken exactly once across {RACERS} concurrent takes"
    );
    assert!(store.take_pending_private(&user("bob")).await?.is_empty());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------------------

async fn notifications_round_trip_every_priority(store: Arc<dyn Store>) -> Result<()> {
    let alice = user("alice");
    let mut stored = Vec::new();
    for (n, priority) in (1..).zip([
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ]) {
        let mut item = notification("alice", n);
        item.priority = priority;
        item.title = format!("Ünïcode title {n} ✓");
        item.content = format!("line one\nline \"two\" 🎉 {n}");
        stored.push(store.append_notification(&item, false).await?);
    }

    let mut listed = store.notifications(&alice, false, 10).await?;
    listed.reverse();
    assert_eq!(listed, stored, "listed newest first, every field intact");
    assert_eq!(store.take_pending_notifications(&alice).await?, stored);
    Ok(())
}

async fn pending_notifications_are_undelivered_unread_and_taken_once(
    store: Arc<dyn Store>,
) -> Result<()> {
    // Ids 1 to 5: pending, delivered, stored already read, pending, pending then read.
    let alice = user("alice");
    store
        .append_notification(&notification("alice", 1), false)
        .await?;
    store
        .append_notification(&notification("alice", 2), true)
        .await?;
    let mut already_read = notification("alice", 3);
    already_read.read = true;
    store.append_notification(&already_read, false).await?;
    store
        .append_notification(&notification("alice", 4), false)
        .await?;
    store
        .append_notification(&notification("alice", 5), false)
        .await?;
    assert!(store.mark_read(&alice, &id(5)).await?);

    let taken = store.take_pending_notifications(&alice).await?;
    assert_eq!(
        numbers(&taken),
        [1, 4],
        "undelivered and unread, oldest first"
    );
    assert!(taken.iter().all(|n| !n.read));
    assert!(
        store.take_pending_notifications(&alice).await?.is_empty(),
        "taken once"
    );

    // Taken means delivered, not read: they are still listed as unread.
    let unread = store.notifications(&alice, true, 10).await?;
    assert_eq!(numbers(&unread), [4, 2, 1]);
    Ok(())
}

async fn mark_read_only_marks_the_users_own(store: Arc<dyn Store>) -> Result<()> {
    // Alice has id 1; bob has ids 1 and 2 (every user's sequence starts at 1).
    let (alice, bob) = (user("alice"), user("bob"));
    store
        .append_notification(&notification("alice", 1), false)
        .await?;
    for n in 2..=3 {
        store
            .append_notification(&notification("bob", n), false)
            .await?;
    }

    assert!(store.mark_read(&alice, &id(1)).await?, "alice's own");
    assert!(!store.mark_read(&alice, &id(99)).await?, "no such id");
    assert!(
        !store.mark_read(&alice, &id(2)).await?,
        "bob's, not alice's"
    );

    let alices = store.notifications(&alice, false, 10).await?;
    assert_eq!(numbers(&alices), [1]);
    assert!(alices[0].read, "marked read");
    let bobs = store.notifications(&bob, false, 10).await?;
    assert_eq!(numbers(&bobs), [2, 1]);
    assert!(
        bobs.iter().all(|n| !n.read),
        "alice cannot mark bob's notifications read, not even the one with her id"
    );
    assert_eq!(
        numbers(&store.take_pending_notifications(&bob).await?),
        [1, 2]
    );
    Ok(())
}

async fn notifications_list_newest_first_filtered_and_limited(store: Arc<dyn Store>) -> Result<()> {
    let alice = user("alice");
    for n in 1..=6 {
        store
            .append_notification(&notification("alice", n), false)
            .await?;
    }
    store
        .append_notification(&notification("bob", 7), false)
        .await?;
    assert!(store.mark_read(&user("bob"), &id(1)).await?, "bob's own 1");
    for n in [2, 5, 6] {
        assert!(store.mark_read(&alice, &id(n)).await?);
    }

    assert_eq!(
        numbers(&store.notifications(&alice, false, 10).await?),
        [6, 5, 4, 3, 2, 1]
    );
    assert_eq!(
        numbers(&store.notifications(&alice, false, 3).await?),
        [6, 5, 4]
    );
    assert_eq!(
        numbers(&store.notifications(&alice, true, 10).await?),
        [4, 3, 1]
    );
    assert_eq!(
        numbers(&store.notifications(&alice, true, 2).await?),
        [4, 3],
        "the limit applies after the unread filter"
    );
    assert!(
        store
            .notifications(&user("carol"), false, 10)
            .await?
            .is_empty()
    );
    Ok(())
}

async fn marking_a_notification_delivered_removes_it_from_pending(
    store: Arc<dyn Store>,
) -> Result<()> {
    let alice = user("alice");
    for n in 1..=3 {
        store
            .append_notification(&notification("alice", n), false)
            .await?;
    }
    for n in 4..=5 {
        store
            .append_notification(&notification("bob", n), false)
            .await?;
    }
    store.mark_notification_delivered(&alice, &id(2)).await?;

    assert_eq!(
        numbers(&store.take_pending_notifications(&alice).await?),
        [1, 3]
    );
    assert_eq!(
        numbers(&store.take_pending_notifications(&user("bob")).await?),
        [1, 2],
        "marking alice's 2 left bob's 2 pending"
    );
    Ok(())
}

async fn concurrent_takes_deliver_each_notification_once(store: Arc<dyn Store>) -> Result<()> {
    let total = 100;
    for n in 1..=total {
        store
            .append_notification(&notification("alice", n), false)
            .await?;
    }

    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..RACERS {
        let store = Arc::clone(&store);
        racers.spawn(async move { store.take_pending_notifications(&user("alice")).await });
    }
    let mut taken = Vec::new();
    while let Some(result) = racers.join_next().await {
        taken.extend(numbers(&result??));
    }

    taken.sort_unstable();
    assert_eq!(taken, (1..=total).collect::<Vec<_>>());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Notifications to everyone
// ---------------------------------------------------------------------------------------

async fn global_notifications_list_newest_first(store: Arc<dyn Store>) -> Result<()> {
    assert!(store.global_notifications(10).await?.is_empty());
    let mut stored = Vec::new();
    for n in 1..=4 {
        stored.push(store.append_global(&global(n)).await?);
    }

    let all = store.global_notifications(10).await?;
    assert_eq!(numbers(&all), [4, 3, 2, 1]);
    stored.reverse();
    assert_eq!(all, stored, "every field round-trips");
    assert_eq!(numbers(&store.global_notifications(2).await?), [4, 3]);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Subscriptions
// ---------------------------------------------------------------------------------------

async fn subscriptions_set_replace_list_and_remove(store: Arc<dyn Store>) -> Result<()> {
    let alice = user("alice");
    store
        .set_subscription(&alice, "weather", &keys(&["paris", "oslo"]))
        .await?;
    store
        .set_subscription(&alice, "stocks", &keys(&["ACME"]))
        .await?;
    store.set_subscription(&alice, "alerts", &[]).await?;

    assert_eq!(
        store.subscriptions(&alice).await?,
        [
            ("alerts".to_owned(), keys(&[])),
            ("stocks".to_owned(), keys(&["ACME"])),
            ("weather".to_owned(), keys(&["paris", "oslo"])),
        ],
        "by topic, keys in the order given"
    );

    store
        .set_subscription(&alice, "weather", &keys(&["rome"]))
        .await?;
    assert_eq!(
        store.subscriptions(&alice).await?[2],
        ("weather".to_owned(), keys(&["rome"])),
        "setting a topic again replaces its keys"
    );

    assert!(store.remove_subscription(&alice, "stocks").await?);
    assert!(
        !store.remove_subscription(&alice, "stocks").await?,
        "already gone"
    );
    assert!(!store.remove_subscription(&alice, "never").await?);
    let topics: Vec<String> = store
        .subscriptions(&alice)
        .await?
        .into_iter()
        .map(|(topic, _)| topic)
        .collect();
    assert_eq!(topics, ["alerts", "weather"]);
    Ok(())
}

async fn subscriptions_are_per_user_and_keep_any_text(store: Arc<dyn Store>) -> Result<()> {
    let (alice, bob) = (user("alice"), user("bob"));
    let odd_keys = keys(&[
        "Zoë ✓",
        "🎉",
        "quote \" and \\ backslash",
        "comma, [bracket]",
        "",
        "%_*",
    ]);
    let odd_topic = "tópic/with spaces & ünicode 🚀";
    store.set_subscription(&alice, odd_topic, &odd_keys).await?;
    store
        .set_subscription(&bob, odd_topic, &keys(&["bob's"]))
        .await?;

    assert_eq!(
        store.subscriptions(&alice).await?,
        [(odd_topic.to_owned(), odd_keys.clone())]
    );
    assert!(store.remove_subscription(&bob, odd_topic).await?);
    assert!(store.subscriptions(&bob).await?.is_empty());
    assert_eq!(
        store.subscriptions(&alice).await?,
        [(odd_topic.to_owned(), odd_keys)],
        "removing bob's left alice's"
    );
    assert!(store.subscriptions(&user("carol")).await?.is_empty());
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Persistent rooms
// ---------------------------------------------------------------------------------------

fn staff_room() -> RoomOptions {
    RoomOptions {
        max_clients: Some(25),
        persistent: true,
        roles: vec!["staff".to_owned(), "admin ★".to_owned()],
        presence: false,
    }
}

async fn rooms_save_update_list_and_delete(store: Arc<dyn Store>) -> Result<()> {
    assert!(store.rooms().await?.is_empty());
    let defaults = RoomOptions {
        persistent: true,
        ..RoomOptions::default()
    };
    store.save_room(&room("zeta"), &defaults).await?;
    store.save_room(&room("alpha"), &staff_room()).await?;
    store.save_room(&room("mid ✓"), &defaults).await?;

    assert_eq!(
        store.rooms().await?,
        [
            (room("alpha"), staff_room()),
            (room("mid ✓"), defaults.clone()),
            (room("zeta"), defaults.clone()),
        ],
        "by name, options intact"
    );

    let updated = RoomOptions {
        max_clients: None,
        roles: Vec::new(),
        presence: true,
        ..staff_room()
    };
    store.save_room(&room("alpha"), &updated).await?;
    let rooms = store.rooms().await?;
    assert_eq!(rooms.len(), 3, "saving again updates, it does not add");
    assert_eq!(rooms[0], (room("alpha"), updated));

    assert!(store.delete_room(&room("mid ✓")).await?);
    assert!(!store.delete_room(&room("mid ✓")).await?, "already gone");
    assert!(!store.delete_room(&room("never")).await?);
    let names: Vec<RoomName> = store.rooms().await?.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, [room("alpha"), room("zeta")]);
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
        pending_privates_are_taken_once_oldest_first,
        delivered_privates_are_never_taken,
        marking_a_private_delivered_removes_it_from_pending,
        pending_privates_are_per_user,
        concurrent_takes_deliver_each_private_once,
        notifications_round_trip_every_priority,
        pending_notifications_are_undelivered_unread_and_taken_once,
        mark_read_only_marks_the_users_own,
        notifications_list_newest_first_filtered_and_limited,
        marking_a_notification_delivered_removes_it_from_pending,
        concurrent_takes_deliver_each_notification_once,
        global_notifications_list_newest_first,
        subscriptions_set_replace_list_and_remove,
        subscriptions_are_per_user_and_keep_any_text,
        rooms_save_update_list_and_delete,
    ],
    durable: [reopening_keeps_everything],
}
