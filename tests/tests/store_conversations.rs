//! The `Store` conformance suite, part three: private conversations read back
//! (`Store::private_history`, CONTRACT §4 `private_history`). Both directions of a
//! conversation take their ids from two sequences (each its recipient's), so ids of the two
//! directions do not compare, and both may hold the same id, even at the same timestamp.
//! The store orders a conversation by (timestamp, recipient, id) and pages with a cursor
//! that names a message by recipient and id; these tests pin that order against one
//! computed here from the messages alone, and page through conversations built to collide
//! on ids and timestamps.

#[macro_use]
mod store_common;

use std::sync::Arc;

use anyhow::Result;
use roomcast_server::store::{PrivateRef, Store, StoredPrivate};
use store_common::*;

/// Appends `(from, to, n)` in that order (`n` is the timestamp, see [`private_between`]),
/// `delivered` alternating so that delivery state is seen to play no part.
async fn send(store: &dyn Store, messages: &[(&str, &str, u64)]) -> Vec<StoredPrivate> {
    let mut stored = Vec::new();
    for (i, &(from, to, n)) in messages.iter().enumerate() {
        let message = private_between(from, to, n);
        stored.push(
            store
                .append_private(&message, i % 2 == 0)
                .await
                .expect("append private"),
        );
    }
    stored
}

/// The conversation of `a` and `b` among `stored`, in the order the contract's users are
/// promised: timestamp, then recipient, then id.
fn conversation(stored: &[StoredPrivate], a: &str, b: &str) -> Vec<StoredPrivate> {
    let between = |p: &StoredPrivate| {
        let (from, to) = (p.from.user_id.as_str(), p.to.as_str());
        (from == a && to == b) || (from == b && to == a)
    };
    let mut items: Vec<StoredPrivate> = stored.iter().filter(|p| between(p)).cloned().collect();
    items.sort_by(|x, y| (x.timestamp, &x.to, &x.id).cmp(&(y.timestamp, &y.to, &y.id)));
    items
}

/// The cursor a client builds from a message it has: its `to` and `id`.
fn cursor(message: &StoredPrivate) -> PrivateRef {
    PrivateRef {
        to: message.to.clone(),
        id: message.id.clone(),
    }
}

/// Reads the conversation of `a` and `b` back page by page, `limit` at a time, each time
/// from the oldest message of the previous page, to the first empty page; checks every
/// page is full but the last; returns what was read, oldest first.
async fn page_through(store: &dyn Store, a: &str, b: &str, limit: u32) -> Vec<StoredPrivate> {
    let (a, b) = (user(a), user(b));
    let mut pages: Vec<Vec<StoredPrivate>> = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .private_history(&a, &b, limit, before.as_ref())
            .await
            .expect("private history")
            .expect("the cursor is a message of the conversation");
        let Some(oldest) = page.first() else { break };
        if let Some(short) = pages.last().filter(|p| p.len() < limit as usize) {
            panic!("a short page ({short:?}) was not the last: then {page:?}");
        }
        before = Some(cursor(oldest));
        pages.push(page);
        assert!(pages.len() <= 100, "paging does not end");
    }
    pages.into_iter().rev().flatten().collect()
}

/// A conversation of alice and bob built to collide: ids of the two directions run in
/// step (both sequences count from 1), so most ids are in it twice; messages at one
/// millisecond go both ways and more than once one way; carol's messages take numbers of
/// both sequences in between, and a note to self one more of alice's.
const COLLIDING: [(&str, &str, u64); 16] = [
    ("alice", "bob", 1),
    ("bob", "alice", 1),
    ("alice", "bob", 2),
    ("bob", "alice", 2),
    ("carol", "bob", 2),
    ("alice", "bob", 3),
    ("alice", "bob", 3),
    ("bob", "alice", 3),
    ("bob", "alice", 3),
    ("carol", "alice", 4),
    ("alice", "carol", 4),
    ("alice", "alice", 4),
    ("bob", "alice", 5),
    ("alice", "bob", 5),
    ("alice", "bob", 7),
    ("bob", "alice", 6),
];

// ---------------------------------------------------------------------------------------
// The suite
// ---------------------------------------------------------------------------------------

async fn a_conversation_is_both_directions_in_order_and_nothing_else(
    store: Arc<dyn Store>,
) -> Result<()> {
    let stored = send(
        &*store,
        &[
            ("alice", "bob", 1),
            ("bob", "alice", 2),
            ("alice", "bob", 3),
            ("carol", "bob", 4),
            ("alice", "carol", 5),
            ("carol", "alice", 6),
            ("bob", "alice", 7),
        ],
    )
    .await;
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    let expected = vec![
        stored[0].clone(),
        stored[1].clone(),
        stored[2].clone(),
        stored[6].clone(),
    ];
    assert_eq!(
        numbers(&expected),
        [1, 1, 2, 3],
        "both directions start at 1: id 1 is in it twice"
    );
    assert_eq!(
        store.private_history(&alice, &bob, 10, None).await?,
        Some(expected.clone())
    );
    assert_eq!(
        store.private_history(&bob, &alice, 10, None).await?,
        Some(expected),
        "one conversation, whichever side asks"
    );
    assert_eq!(
        store.private_history(&alice, &carol, 10, None).await?,
        Some(vec![stored[4].clone(), stored[5].clone()])
    );
    assert_eq!(
        store
            .private_history(&alice, &user("dave"), 10, None)
            .await?,
        Some(Vec::new()),
        "no messages is an empty conversation"
    );
    // Taking what was pending changes nothing: the history is of what was stored.
    store.take_pending_private(&bob).await?;
    assert_eq!(
        store.private_history(&alice, &bob, 10, None).await?,
        Some(conversation(&stored, "alice", "bob"))
    );
    Ok(())
}

async fn the_newest_limit_come_oldest_first(store: Arc<dyn Store>) -> Result<()> {
    let stored = send(
        &*store,
        &[
            ("alice", "bob", 1),
            ("bob", "alice", 2),
            ("alice", "bob", 3),
            ("bob", "alice", 4),
            ("alice", "bob", 5),
        ],
    )
    .await;
    let (alice, bob) = (user("alice"), user("bob"));
    assert_eq!(
        store.private_history(&alice, &bob, 2, None).await?,
        Some(stored[3..].to_vec())
    );
    assert_eq!(
        store.private_history(&alice, &bob, 1, None).await?,
        Some(stored[4..].to_vec())
    );
    assert_eq!(
        store
            .private_history(&alice, &bob, 2, Some(&cursor(&stored[3])))
            .await?,
        Some(stored[1..3].to_vec())
    );
    Ok(())
}

async fn the_order_is_timestamp_then_recipient_then_id(store: Arc<dyn Store>) -> Result<()> {
    let stored = send(&*store, &COLLIDING).await;
    let expected = conversation(&stored, "alice", "bob");
    assert_eq!(expected.len(), 12);
    let all = store
        .private_history(&user("alice"), &user("bob"), 500, None)
        .await?;
    assert_eq!(all.as_ref(), Some(&expected));
    // Spelled out for the first millisecond: to alice before to bob, whatever the ids.
    let first: Vec<(&str, u64)> = expected[..2]
        .iter()
        .map(|p| (p.to.as_str(), number(&p.id)))
        .collect();
    assert_eq!(first, [("alice", 1), ("bob", 1)]);
    Ok(())
}

async fn paging_back_from_the_oldest_visits_each_message_once(store: Arc<dyn Store>) -> Result<()> {
    let stored = send(&*store, &COLLIDING).await;
    let expected = conversation(&stored, "alice", "bob");
    for limit in [1, 2, 3, 5, 12, 13] {
        for (a, b) in [("alice", "bob"), ("bob", "alice")] {
            assert_eq!(
                page_through(&*store, a, b, limit).await,
                expected,
                "{a} with {b}, {limit} a page"
            );
        }
    }
    Ok(())
}

async fn before_is_strict_and_names_a_message_by_recipient_and_id(
    store: Arc<dyn Store>,
) -> Result<()> {
    let stored = send(&*store, &COLLIDING).await;
    let expected = conversation(&stored, "alice", "bob");
    let (alice, bob) = (user("alice"), user("bob"));
    // Every message as the cursor: exactly what comes before it, though its id (and
    // timestamp) is often another message's too.
    for (i, message) in expected.iter().enumerate() {
        let before = cursor(message);
        assert_eq!(
            store
                .private_history(&alice, &bob, 500, Some(&before))
                .await?,
            Some(expected[..i].to_vec()),
            "before {before:?}"
        );
        let newest = i.saturating_sub(2);
        assert_eq!(
            store
                .private_history(&bob, &alice, 2, Some(&before))
                .await?,
            Some(expected[newest..i].to_vec()),
            "the newest two before {before:?}"
        );
    }
    Ok(())
}

async fn a_cursor_outside_the_conversation_names_nothing(store: Arc<dyn Store>) -> Result<()> {
    let stored = send(&*store, &COLLIDING).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let from_carol = stored
        .iter()
        .find(|p| p.from.user_id.as_str() == "carol" && p.to == alice)
        .expect("carol wrote to alice");
    let to_carol = stored
        .iter()
        .find(|p| p.to.as_str() == "carol")
        .expect("alice wrote to carol");
    let to_self = stored
        .iter()
        .find(|p| p.from.user_id == alice && p.to == alice)
        .expect("alice wrote to herself");
    let outside = [
        // Alice's own id, but the message is carol's: not of this conversation.
        cursor(from_carol),
        cursor(to_self),
        cursor(to_carol),
        PrivateRef {
            to: bob.clone(),
            id: id(99),
        },
    ];
    for before in &outside {
        assert_eq!(
            store
                .private_history(&alice, &bob, 10, Some(before))
                .await?,
            None,
            "{before:?}"
        );
    }
    Ok(())
}

async fn the_conversation_with_oneself_has_each_message_once(store: Arc<dyn Store>) -> Result<()> {
    let stored = send(
        &*store,
        &[
            ("alice", "alice", 1),
            ("bob", "alice", 1),
            ("alice", "alice", 2),
            ("alice", "bob", 2),
            ("alice", "alice", 3),
        ],
    )
    .await;
    let alice = user("alice");
    let notes = vec![stored[0].clone(), stored[2].clone(), stored[4].clone()];
    assert_eq!(
        store.private_history(&alice, &alice, 10, None).await?,
        Some(notes.clone())
    );
    assert_eq!(page_through(&*store, "alice", "alice", 1).await, notes);
    assert_eq!(
        store
            .private_history(&alice, &user("bob"), 10, None)
            .await?,
        Some(vec![stored[1].clone(), stored[3].clone()]),
        "notes to self are no conversation with anyone else"
    );
    Ok(())
}

async fn a_conversation_survives_reopening(backend: Backend) -> Result<()> {
    let stored = {
        let store = backend.open().await?;
        send(&*store, &COLLIDING).await
    };
    let store = backend.open().await?;
    let expected = conversation(&stored, "alice", "bob");
    assert_eq!(page_through(&*store, "bob", "alice", 4).await, expected);
    Ok(())
}

stores! {
    suite: [
        a_conversation_is_both_directions_in_order_and_nothing_else,
        the_newest_limit_come_oldest_first,
        the_order_is_timestamp_then_recipient_then_id,
        paging_back_from_the_oldest_visits_each_message_once,
        before_is_strict_and_names_a_message_by_recipient_and_id,
        a_cursor_outside_the_conversation_names_nothing,
        the_conversation_with_oneself_has_each_message_once,
    ],
    durable: [a_conversation_survives_reopening],
}
