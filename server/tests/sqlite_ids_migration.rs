//! Migration 0003 on a database written before the store assigned ids: the rows keep
//! their per-node `(ms << 12) + seq` ids, and each scope's new sequence starts right
//! above its newest one, so new ids sort after old ones and history, `since` and pending
//! deliveries go on across the change. Also 0004 on the same old rows: private messages
//! stored before conversations could be read back are in theirs. SQLite-specific (it
//! builds the old schema with the old migrations), so here rather than in the store suite.

use std::str::FromStr;

use anyhow::Result;
use roomcast_protocol::{MessageId, Priority, RoomName, User, UserId};
use roomcast_server::store::{
    NewChat, NewGlobal, NewNotification, NewPrivate, PrivateRef, SqliteStore, Store, sequence_id,
};
use serde_json::{Map, json};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

/// The migrations as the server embeds them, to apply only the old ones.
static MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
/// The last migration before ids were assigned by the store.
const BEFORE_ASSIGNED_IDS: i64 = 2;

/// Old-style ids: 16 hex digits of `(ms << 12) + seq`, as `MessageIds` made them.
const LOBBY: [&str; 3] = ["018f3a5c1e000000", "018f3a5c1e000001", "018f3a5c1e7a3000"];
const QUIET: &str = "018f3a5c1d000000";
const BOB_PRIVATE_DELIVERED: &str = "018f3a5c1e100000";
const BOB_PRIVATE_PENDING: &str = "018f3a5c1e200000";
/// Bob's newest id overall is a notification: his privates continue above it too.
const BOB_NOTIFICATION: &str = "018f3a5c1e300000";
const ALICE_NOTIFICATION: &str = "018f3a5c1e400000";
const GLOBAL: &str = "018f3a5c1e500000";

fn id(hex: &str) -> MessageId {
    MessageId::new(hex).expect("valid message id")
}

/// The id right after `hex`.
fn after(hex: &str) -> MessageId {
    sequence_id(u64::from_str_radix(hex, 16).expect("hex") + 1)
}

fn room(name: &str) -> RoomName {
    RoomName::new(name).expect("valid room name")
}

fn user(name: &str) -> UserId {
    UserId::new(name).expect("valid user id")
}

fn sender() -> User {
    User::new(user("alice"), None, Vec::new(), Map::new())
}

fn chat(name: &str) -> NewChat {
    NewChat {
        room: room(name),
        from: sender(),
        message: json!("new"),
        timestamp: 1_800_000_000_000,
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> &MessageId) -> Vec<MessageId> {
    items.iter().map(|item| id(item).clone()).collect()
}

/// A database file at schema version 2 holding `chats` (room, id) and one of everything
/// else, written the way the old server did.
async fn old_database(path: &std::path::Path, chats: &[(&str, &str)]) -> Result<String> {
    let url = format!("sqlite://{}", path.display());
    let pool =
        SqlitePool::connect_with(SqliteConnectOptions::from_str(&url)?.create_if_missing(true))
            .await?;
    MIGRATIONS.run_to(BEFORE_ASSIGNED_IDS, &pool).await?;
    let sender = serde_json::to_string(&sender())?;
    for (name, id) in chats {
        sqlx::query("INSERT INTO chat_messages VALUES (?, ?, ?, '\"old\"', 1)")
            .bind(name)
            .bind(id)
            .bind(&sender)
            .execute(&pool)
            .await?;
    }
    for (id, delivered) in [(BOB_PRIVATE_DELIVERED, true), (BOB_PRIVATE_PENDING, false)] {
        sqlx::query("INSERT INTO private_messages VALUES ('bob', ?, ?, '\"old\"', 1, ?)")
            .bind(id)
            .bind(&sender)
            .bind(delivered)
            .execute(&pool)
            .await?;
    }
    for (to, id) in [("bob", BOB_NOTIFICATION), ("alice", ALICE_NOTIFICATION)] {
        sqlx::query("INSERT INTO notifications VALUES (?, ?, 'old', 'old', 'normal', 1, 0, 0)")
            .bind(to)
            .bind(id)
            .execute(&pool)
            .await?;
    }
    sqlx::query("INSERT INTO global_notifications VALUES (?, 'old', 'old', 1)")
        .bind(GLOBAL)
        .execute(&pool)
        .await?;
    pool.close().await;
    Ok(url)
}

#[tokio::test]
async fn new_ids_continue_above_the_old_ones_in_every_scope() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let chats = [
        ("lobby", LOBBY[0]),
        ("lobby", LOBBY[2]),
        ("lobby", LOBBY[1]),
        ("quiet", QUIET),
    ];
    let url = old_database(&dir.path().join("old.db"), &chats).await?;
    let store = SqliteStore::open(&url).await?;

    // Chats: each room right above its own newest.
    let lobby = room("lobby");
    let new = store.append_chat(&chat("lobby")).await?;
    assert_eq!(new.id, after(LOBBY[2]));
    assert!(LOBBY.iter().all(|&old| new.id.as_str() > old), "{}", new.id);
    assert_eq!(store.append_chat(&chat("quiet")).await?.id, after(QUIET));
    assert_eq!(
        store.append_chat(&chat("fresh")).await?.id,
        sequence_id(1),
        "a room with no old chats starts at 1"
    );
    let history = store.chat_history(&lobby, 10, None).await?;
    let expected = [id(LOBBY[0]), id(LOBBY[1]), id(LOBBY[2]), new.id.clone()];
    assert_eq!(ids(&history, |c| &c.id), expected);
    assert_eq!(
        ids(&store.chat_since(&lobby, &id(LOBBY[0]), 10).await?, |c| &c
            .id),
        expected[1..],
        "a client that saw an old id gets the rest, new ones included"
    );
    assert_eq!(
        ids(&store.chat_history(&lobby, 10, Some(&new.id)).await?, |c| {
            &c.id
        }),
        expected[..3]
    );

    // A user's privates and notifications: above the newest of both kinds.
    let bob = user("bob");
    let private = NewPrivate {
        to: bob.clone(),
        from: sender(),
        message: json!("new"),
        timestamp: 1_800_000_000_000,
    };
    let new_private = store.append_private(&private, false).await?;
    assert_eq!(new_private.id, after(BOB_NOTIFICATION));
    let notification = NewNotification {
        user_id: bob.clone(),
        title: "new".to_owned(),
        content: "new".to_owned(),
        priority: Priority::High,
        read: false,
        timestamp: 1_800_000_000_000,
    };
    let new_notification = store.append_notification(&notification, false).await?;
    assert_eq!(new_notification.id, after(new_private.id.as_str()));
    assert_eq!(
        ids(&store.take_pending_private(&bob).await?, |p| &p.id),
        [id(BOB_PRIVATE_PENDING), new_private.id],
        "the old pending one first, the delivered one not again"
    );
    assert_eq!(
        ids(&store.take_pending_notifications(&bob).await?, |n| &n.id),
        [id(BOB_NOTIFICATION), new_notification.id.clone()]
    );
    let alice = user("alice");
    assert!(store.mark_read(&alice, &id(ALICE_NOTIFICATION)).await?);
    assert_eq!(
        ids(&store.notifications(&bob, false, 10).await?, |n| &n.id),
        [new_notification.id, id(BOB_NOTIFICATION)]
    );

    // Notifications to everyone.
    let global = NewGlobal {
        title: "new".to_owned(),
        content: "new".to_owned(),
        timestamp: 1_800_000_000_000,
    };
    let new_global = store.append_global(&global).await?;
    assert_eq!(new_global.id, after(GLOBAL));
    assert_eq!(
        ids(&store.global_notifications(10).await?, |g| &g.id),
        [new_global.id, id(GLOBAL)]
    );

    // Opening again migrates nothing twice: the sequences go on, not back to the seeds.
    drop(store);
    let store = SqliteStore::open(&url).await?;
    let next = store.append_chat(&chat("lobby")).await?;
    assert_eq!(next.id, after(new.id.as_str()));
    Ok(())
}

#[tokio::test]
async fn old_private_messages_are_in_their_conversation() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let url = old_database(&dir.path().join("old.db"), &[]).await?;
    let store = SqliteStore::open(&url).await?;
    let (alice, bob) = (user("alice"), user("bob"));
    let reply = NewPrivate {
        to: alice.clone(),
        from: User::new(bob.clone(), None, Vec::new(), Map::new()),
        message: json!("new"),
        timestamp: 1_800_000_000_000,
    };
    let reply = store.append_private(&reply, true).await?;

    let all = store
        .private_history(&alice, &bob, 10, None)
        .await?
        .expect("no cursor");
    let keys: Vec<(&str, &str)> = all.iter().map(|p| (p.to.as_str(), p.id.as_str())).collect();
    assert_eq!(
        keys,
        [
            ("bob", BOB_PRIVATE_DELIVERED),
            ("bob", BOB_PRIVATE_PENDING),
            ("alice", reply.id.as_str())
        ],
        "alice's old messages to bob (their sender known from its JSON), then bob's reply"
    );
    let before = PrivateRef {
        to: bob.clone(),
        id: id(BOB_PRIVATE_PENDING),
    };
    let older = store
        .private_history(&bob, &alice, 10, Some(&before))
        .await?;
    assert_eq!(
        older.map(|items| items.len()),
        Some(1),
        "an old message is a cursor"
    );
    Ok(())
}

#[tokio::test]
async fn an_old_id_that_would_sort_wrong_fails_the_migration_and_changes_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Not 16 hex digits, and newest as text: no 16-digit id could sort after it.
    let chats = [("lobby", LOBBY[0]), ("lobby", "zz")];
    let url = old_database(&dir.path().join("odd.db"), &chats).await?;

    let opened = SqliteStore::open(&url).await;
    let err = opened.expect_err("the migration must refuse").to_string();
    assert!(
        err.contains("newest_id_is_16_lowercase_hex_digits"),
        "the error names what is wrong: {err}"
    );

    // Rolled back whole: with the odd row gone, the migration runs from the start.
    let pool = SqlitePool::connect(&url).await?;
    sqlx::query("DELETE FROM chat_messages WHERE id = 'zz'")
        .execute(&pool)
        .await?;
    pool.close().await;
    let store = SqliteStore::open(&url).await?;
    assert_eq!(store.append_chat(&chat("lobby")).await?.id, after(LOBBY[0]));
    Ok(())
}
