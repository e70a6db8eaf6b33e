//! The `Store` conformance suite, part one (see `store.rs`), continued: what the store
//! keeps besides messages. Topic subscriptions are set, replaced, listed and removed per
//! user with any text as keys; persistent rooms are saved, updated, listed and deleted
//! with all their options. Run against every store (see `stores!` in `store_common`).

#[macro_use]
mod store_common;

use std::sync::Arc;

use anyhow::Result;
use roomcast_protocol::RoomName;
use roomcast_server::hub::RoomOptions;
use roomcast_server::store::Store;
use store_common::*;

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
// Every test against every store
// ---------------------------------------------------------------------------------------

stores! {
    suite: [
        subscriptions_set_replace_list_and_remove,
        subscriptions_are_per_user_and_keep_any_text,
        rooms_save_update_list_and_delete,
    ],
    durable: [],
}
