//! The `Store` conformance suite, part two: the ids the store assigns (see the `Store`
//! trait docs). Each scope (a room; a recipient, for private messages and notifications
//! together; notifications to everyone) numbers its messages 1, 2, 3, ... with no gap and
//! no repeat, and a reader never sees a higher id of a scope before a lower one, however
//! many writers there are and on however many nodes. That last property is what a plain
//! autoincrement (or a counter bumped outside the insert's transaction) breaks: two
//! writers take 5 and 6, 6 commits first, and a reader that polls `since` in between moves
//! past 5 for ever. Part one, `store.rs`, covers each method's behaviour.

#[macro_use]
mod store_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use roomcast_protocol::MessageId;
use roomcast_server::store::{Store, StoredChat};
use serde_json::json;
use store_common::*;

// ---------------------------------------------------------------------------------------
// Scopes
// ---------------------------------------------------------------------------------------

async fn chat_ids_are_per_room(store: Arc<dyn Store>) -> Result<()> {
    let mut ids = BTreeMap::<&str, Vec<u64>>::new();
    for (n, name) in (1..).zip(["a", "b", "a", "a", "b", "c", "b", "a"]) {
        let stored = store.append_chat(&chat(name, n, json!(n))).await?;
        ids.entry(name).or_default().push(number(&stored.id));
    }
    assert_eq!(
        ids,
        BTreeMap::from([
            ("a", vec![1, 2, 3, 4]),
            ("b", vec![1, 2, 3]),
            ("c", vec![1])
        ]),
        "every room counts from 1, whatever the others do"
    );
    Ok(())
}

async fn privates_and_notifications_share_the_recipients_sequence(
    store: Arc<dyn Store>,
) -> Result<()> {
    let bob = user("bob");
    // Bob's messages of both kinds, interleaved with other scopes' writes that must not
    // use up his numbers: carol's, a room named like him, and everyone's.
    let p1 = store.append_private(&private("bob", 1), false).await?;
    store.append_private(&private("carol", 2), false).await?;
    let n2 = store
        .append_notification(&notification("bob", 3), false)
        .await?;
    store.append_chat(&chat("bob", 4, json!("a room"))).await?;
    store.append_global(&global(5)).await?;
    let n3 = store
        .append_notification(&notification("bob", 6), false)
        .await?;
    let p4 = store.append_private(&private("bob", 7), false).await?;
    store
        .append_notification(&notification("carol", 8), false)
        .await?;
    let g2 = store.append_global(&global(9)).await?;

    assert_eq!(
        [&p1.id, &n2.id, &n3.id, &p4.id],
        [&id(1), &id(2), &id(3), &id(4)]
    );
    assert_eq!(
        g2.id,
        id(2),
        "everyone's notifications have their own sequence"
    );
    assert_eq!(
        numbers(&store.take_pending_private(&user("carol")).await?),
        [1]
    );
    assert_eq!(
        numbers(&store.take_pending_notifications(&user("carol")).await?),
        [2],
        "carol's private and notification share her sequence too"
    );

    // What a connect delivers, both kinds merged by id, is in acceptance order.
    let privates = store.take_pending_private(&bob).await?;
    let notifications = store.take_pending_notifications(&bob).await?;
    assert_eq!(
        (numbers(&privates), numbers(&notifications)),
        (vec![1, 4], vec![2, 3])
    );
    let mut merged: Vec<(MessageId, u64)> = privates
        .iter()
        .map(|p| (p.id.clone(), p.timestamp))
        .chain(notifications.iter().map(|n| (n.id.clone(), n.timestamp)))
        .collect();
    merged.sort();
    let accepted: Vec<u64> = merged.iter().map(|(_, at)| *at).collect();
    assert_eq!(accepted, [1, 3, 6, 7].map(timestamp));
    Ok(())
}

/// A client's `since` or `before` is any message id, not only one the store gave: it is
/// compared with the stored ids as a string, as the contract says ids compare, whatever
/// the store keeps them as.
async fn bounds_that_are_not_stored_ids_compare_as_strings(store: Arc<dyn Store>) -> Result<()> {
    append_chats(&*store, "lobby", 1..=11).await;
    let lobby = room("lobby");
    let any = |text: &str| MessageId::new(text).expect("valid message id");
    let since = async |text: &str| -> Result<Vec<u64>> {
        Ok(numbers(&store.chat_since(&lobby, &any(text), 100).await?))
    };
    let before = async |text: &str| -> Result<Vec<u64>> {
        Ok(numbers(
            &store.chat_history(&lobby, 100, Some(&any(text))).await?,
        ))
    };

    assert_eq!(
        since("0000000000000001x").await?,
        (2..=11).collect::<Vec<_>>()
    );
    assert_eq!(before("0000000000000002").await?, [1]);
    assert_eq!(
        before("00000000000000020").await?,
        [1, 2],
        "a longer string is after"
    );
    assert_eq!(
        since("000000000000000A").await?,
        [10, 11],
        "upper case sorts between the digits and a-f"
    );
    assert_eq!(since("0").await?, (1..=11).collect::<Vec<_>>());
    assert!(since("zzz").await?.is_empty());
    assert!(since("A").await?.is_empty());
    assert_eq!(before("A").await?, (1..=11).collect::<Vec<_>>());
    assert!(before("0").await?.is_empty());
    assert_eq!(
        numbers(
            &store
                .chat_range(
                    &lobby,
                    &any("000000000000000:"),
                    Some(&any("000000000000000b")),
                    100
                )
                .await?
        ),
        [10, 11],
        "':' sorts right after '9'"
    );

    // An id the store never gave names no message.
    let bob = user("bob");
    store
        .append_notification(&notification("bob", 1), false)
        .await?;
    assert!(!store.mark_read(&bob, &any("1")).await?);
    assert!(!store.mark_read(&bob, &any("00000000000000001")).await?);
    store.mark_private_delivered(&bob, &any("x")).await?;
    store.mark_notification_delivered(&bob, &any("x")).await?;
    assert_eq!(numbers(&store.take_pending_notifications(&bob).await?), [1]);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Concurrent writers
// ---------------------------------------------------------------------------------------

/// Writer tasks, and the appends each makes.
const WRITERS: u64 = 8;
const PER_WRITER: u64 = 40;
/// However slow the machine, the writers are done long before this.
const PATIENCE: Duration = Duration::from_secs(60);

async fn concurrent_chats_are_dense_and_a_poller_never_skips_one(
    store: Arc<dyn Store>,
) -> Result<()> {
    chats_from_concurrent_writers(&[store]).await
}

async fn concurrent_messages_to_one_user_are_dense(store: Arc<dyn Store>) -> Result<()> {
    messages_to_one_user_from_concurrent_writers(&[store]).await
}

/// Two nodes: two stores opened on one database, both writing the same room.
async fn two_nodes_writing_one_room_keep_its_ids_dense_and_in_commit_order(
    backend: Backend,
) -> Result<()> {
    let nodes = [backend.open().await?, backend.open().await?];
    chats_from_concurrent_writers(&nodes).await
}

async fn two_nodes_writing_to_one_user_keep_its_ids_dense(backend: Backend) -> Result<()> {
    let nodes = [backend.open().await?, backend.open().await?];
    messages_to_one_user_from_concurrent_writers(&nodes).await
}

/// [`WRITERS`] tasks, spread over `nodes`, each append [`PER_WRITER`] chats to one room
/// while a reader polls `chat_since(the last id it saw)` on the nodes in turn. Every
/// poll must continue exactly where the previous one ended, and the ids must be
/// 1..=total with each writer's in the order it wrote them.
async fn chats_from_concurrent_writers(nodes: &[Arc<dyn Store>]) -> Result<()> {
    let total = WRITERS * PER_WRITER;
    let reader = tokio::spawn(poll_every_chat(nodes.to_vec(), total));
    // Another room written at the same time: with one sequence for every room (a plain
    // autoincrement), the busy room's ids would skip the ones this room took.
    let other = {
        let node = Arc::clone(&nodes[nodes.len() - 1]);
        tokio::spawn(async move {
            let mut stored = Vec::new();
            for n in 0..PER_WRITER {
                stored.push(node.append_chat(&chat("other", n, json!(n))).await?);
            }
            anyhow::Ok(stored)
        })
    };
    let mut writers = tokio::task::JoinSet::new();
    for (writer, node) in (0..WRITERS).zip(nodes.iter().cycle()) {
        let node = Arc::clone(node);
        writers.spawn(async move {
            let mut stored = Vec::new();
            for n in 0..PER_WRITER {
                let chat = chat("busy", n, json!({ "writer": writer, "n": n }));
                stored.push(node.append_chat(&chat).await?);
            }
            anyhow::Ok(stored)
        });
    }
    let mut appended: Vec<StoredChat> = Vec::new();
    while let Some(stored) = writers.join_next().await {
        let stored = stored??;
        ensure!(
            numbers(&stored).is_sorted(),
            "one writer's appends got increasing ids: {:?}",
            numbers(&stored)
        );
        appended.extend(stored);
    }
    let polled = tokio::time::timeout(PATIENCE, reader).await???;
    let other = other.await??;
    assert_eq!(
        numbers(&other),
        (1..=PER_WRITER).collect::<Vec<_>>(),
        "the other room counts on its own"
    );

    appended.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        numbers(&appended),
        (1..=total).collect::<Vec<_>>(),
        "dense: no id skipped, none given twice"
    );
    assert_eq!(
        polled, appended,
        "the poller saw each chat once, as appended"
    );
    Ok(())
}

/// Reads the room of [`chats_from_concurrent_writers`] until it has seen `total` chats.
async fn poll_every_chat(nodes: Vec<Arc<dyn Store>>, total: u64) -> Result<Vec<StoredChat>> {
    let busy = room("busy");
    // Above the total: `chat_since` keeps the newest `limit`, so a smaller one could skip
    // ids on its own.
    let limit = u32::try_from(total + 1)?;
    let mut seen: Vec<StoredChat> = Vec::new();
    let mut polls = 0_usize;
    for node in nodes.iter().cycle() {
        let since = seen.last().map_or_else(|| id(0), |chat| chat.id.clone());
        let batch = node.chat_since(&busy, &since, limit).await?;
        let next = number(&since) + 1;
        let expected: Vec<u64> = (next..next + batch.len() as u64).collect();
        ensure!(
            numbers(&batch) == expected,
            "a poll after {} got {:?}: a higher id was visible before a lower one",
            number(&since),
            numbers(&batch)
        );
        seen.extend(batch);
        polls += 1;
        if seen.len() as u64 >= total {
            break;
        }
        tokio::task::yield_now().await;
    }
    ensure!(polls > 1, "the reader ran alongside the writers");
    Ok(seen)
}

/// [`WRITERS`] tasks spread over `nodes`, half sending private messages and half
/// notifications to one user: together they must get the ids 1..=total, each once, and
/// the store must hold each under the id its append returned.
async fn messages_to_one_user_from_concurrent_writers(nodes: &[Arc<dyn Store>]) -> Result<()> {
    let total = WRITERS * PER_WRITER;
    let mut writers = tokio::task::JoinSet::new();
    for (writer, node) in (0..WRITERS).zip(nodes.iter().cycle()) {
        let node = Arc::clone(node);
        writers.spawn(async move {
            let mut ids = Vec::new();
            for n in 0..PER_WRITER {
                let at = writer * PER_WRITER + n;
                let id = if writer % 2 == 0 {
                    node.append_private(&private("bob", at), false).await?.id
                } else {
                    node.append_notification(&notification("bob", at), false)
                        .await?
                        .id
                };
                ids.push((id, at));
            }
            anyhow::Ok(ids)
        });
    }
    let mut appended = BTreeMap::new();
    while let Some(ids) = writers.join_next().await {
        for (id, at) in ids?? {
            ensure!(
                appended.insert(number(&id), timestamp(at)).is_none(),
                "id {id} given twice"
            );
        }
    }
    assert_eq!(
        appended.keys().copied().collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>(),
        "dense across both kinds"
    );

    let node = &nodes[0];
    let privates = node.take_pending_private(&user("bob")).await?;
    let notifications = node.take_pending_notifications(&user("bob")).await?;
    let stored: BTreeMap<u64, u64> = privates
        .iter()
        .map(|p| (number(&p.id), p.timestamp))
        .chain(notifications.iter().map(|n| (number(&n.id), n.timestamp)))
        .collect();
    assert_eq!(
        stored, appended,
        "each stored under the id its append returned"
    );
    Ok(())
}

stores! {
    suite: [
        chat_ids_are_per_room,
        privates_and_notifications_share_the_recipients_sequence,
        bounds_that_are_not_stored_ids_compare_as_strings,
        concurrent_chats_are_dense_and_a_poller_never_skips_one,
        concurrent_messages_to_one_user_are_dense,
    ],
    durable: [
        two_nodes_writing_one_room_keep_its_ids_dense_and_in_commit_order,
        two_nodes_writing_to_one_user_keep_its_ids_dense,
    ],
}
