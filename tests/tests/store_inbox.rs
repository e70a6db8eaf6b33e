//! The `Store` conformance suite, part one (see `store.rs`), continued: what waits for a
//! user. Pending private messages and notifications are taken once, oldest first, per
//! user, even by concurrent takers, and never once delivered; notifications keep their
//! priority, are marked read only for their own user, and list newest first, filtered and
//! limited; notifications to everyone list newest first. Run against every store (see
//! `stores!` in `store_common`).

#[macro_use]
mod store_common;

use std::sync::Arc;

use anyhow::Result;
use roomcast_protocol::Priority;
use roomcast_server::store::Store;
use store_common::*;

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
// Every test against every store
// ---------------------------------------------------------------------------------------

stores! {
    suite: [
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
    ],
    durable: [],
}
