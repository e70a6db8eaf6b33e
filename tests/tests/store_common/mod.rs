//! What the parts of the `Store` conformance suite share (`store.rs`, `store_inbox.rs` and
//! `store_state.rs`, the behaviour of each method; `store_ids.rs`, the ids the store
//! assigns; `store_conversations.rs`, private conversations read back): the stores under
//! test, the builders, and the [`stores!`] macro that runs every test against every store.

// Each suite file is its own test crate and uses its own part of this.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use roomcast_protocol::{MessageId, Priority, RoomName, User, UserId};
use roomcast_server::hub::RoomOptions;
use roomcast_server::store::{
    self, NewChat, NewGlobal, NewNotification, NewPrivate, Store, StoredChat, StoredGlobal,
    StoredNotification, StoredPrivate,
};
use roomcast_tests::services::PgSchema;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// The stores under test
// ---------------------------------------------------------------------------------------

/// A store under test: where it lives, and what must outlive it. A scratch directory or
/// a PostgreSQL schema is removed when the backend drops, after every store the test
/// opened on it, so even a failing test leaves nothing behind.
#[derive(Debug)]
pub enum Backend {
    /// A fresh in-memory SQLite database: each `open` is a new, empty one.
    Memory,
    /// A SQLite file in its own scratch directory.
    SqliteFile(ScratchDir),
    /// A fresh schema on the test PostgreSQL server: each `open` is another pool (another
    /// node) on the same data.
    Postgres(PgSchema),
}

impl Backend {
    pub async fn memory() -> Option<Self> {
        Some(Self::Memory)
    }

    pub async fn sqlite_file() -> Option<Self> {
        Some(Self::SqliteFile(ScratchDir::new()))
    }

    /// `None` (the test skips, loudly) when PostgreSQL is unreachable, unless
    /// `ROOMCAST_REQUIRE_SERVICES=1`, which fails it instead.
    pub async fn postgres() -> Option<Self> {
        PgSchema::create().await.map(Self::Postgres)
    }

    /// The store URL, as a user writes it in `ROOMCAST_STORE`.
    pub fn url(&self) -> String {
        match self {
            Self::Memory => "sqlite::memory:".to_owned(),
            Self::SqliteFile(dir) => format!("sqlite://{}", dir.0.join("store.db").display()),
            Self::Postgres(schema) => schema.url(),
        }
    }

    pub async fn open(&self) -> Result<Arc<dyn Store>> {
        Ok(store::open(&self.url()).await?)
    }
}

/// A directory under the system temp dir, unique per process and call (the tests crate
/// has no `tempfile`).
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("roomcast-store-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create scratch dir");
        Self(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Opens a fresh store from `backend` (none: skipped) and runs one suite test on it. The
/// backend outlives the store.
pub async fn run<F, Fut>(backend: Option<Backend>, test: F) -> Result<()>
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let Some(backend) = backend else {
        return Ok(());
    };
    let store = backend.open().await?;
    let result = test(store).await;
    drop(backend);
    result
}

/// Runs one durable suite test on `backend` (none: skipped).
pub async fn run_durable<F, Fut>(backend: Option<Backend>, test: F) -> Result<()>
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    match backend {
        Some(backend) => test(backend).await,
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------

/// The id the store gives the `n`th message of a scope: 16 hex digits of `n`.
pub fn id(n: u64) -> MessageId {
    MessageId::new(format!("{n:016x}")).expect("valid message id")
}

pub fn room(name: &str) -> RoomName {
    RoomName::new(name).expect("valid room name")
}

pub fn user(id: &str) -> UserId {
    UserId::new(id).expect("valid user id")
}

/// A sender with every part of a public user object filled in.
pub fn sender(id: &str) -> User {
    let Value::Object(info) = json!({ "avatar": "https://example.com/a.png", "level": 3 }) else {
        unreachable!("an object literal");
    };
    User::new(
        user(id),
        Some(format!("{id} the sender")),
        vec!["member".to_owned()],
        info,
    )
}

pub fn timestamp(n: u64) -> u64 {
    1_700_000_000_000 + n
}

/// A chat to append; `n` only tells it apart (its timestamp), the store picks the id.
pub fn chat(room_name: &str, n: u64, message: Value) -> NewChat {
    NewChat {
        room: room(room_name),
        from: sender("alice"),
        message,
        timestamp: timestamp(n),
    }
}

pub fn private(to: &str, n: u64) -> NewPrivate {
    NewPrivate {
        to: user(to),
        from: sender("alice"),
        message: json!({ "text": format!("private {n}") }),
        timestamp: timestamp(n),
    }
}

/// A private message from `from` to `to` at [`timestamp`]`(n)`, its content naming all
/// three, so that a failure shows which message is where.
pub fn private_between(from: &str, to: &str, n: u64) -> NewPrivate {
    NewPrivate {
        to: user(to),
        from: sender(from),
        message: json!(format!("{from}>{to}@{n}")),
        timestamp: timestamp(n),
    }
}

pub fn notification(user_id: &str, n: u64) -> NewNotification {
    NewNotification {
        user_id: user(user_id),
        title: format!("title {n}"),
        content: format!("content {n}"),
        priority: Priority::Normal,
        read: false,
        timestamp: timestamp(n),
    }
}

pub fn global(n: u64) -> NewGlobal {
    NewGlobal {
        title: format!("global {n}"),
        content: format!("to everyone {n}"),
        timestamp: timestamp(n),
    }
}

/// Anything stored under a [`MessageId`].
pub trait HasId {
    fn message_id(&self) -> &MessageId;
}

impl HasId for StoredChat {
    fn message_id(&self) -> &MessageId {
        &self.id
    }
}

impl HasId for StoredPrivate {
    fn message_id(&self) -> &MessageId {
        &self.id
    }
}

impl HasId for StoredNotification {
    fn message_id(&self) -> &MessageId {
        &self.id
    }
}

impl HasId for StoredGlobal {
    fn message_id(&self) -> &MessageId {
        &self.id
    }
}

/// The number behind an id the store assigned, after checking its wire form.
pub fn number(id: &MessageId) -> u64 {
    let hex = id.as_str();
    assert!(
        hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "ids are 16 lowercase hex digits: {hex:?}"
    );
    u64::from_str_radix(hex, 16).expect("hex id")
}

/// The numbers behind the ids of `items`, in order, so assertions read `[3, 4, 5]`.
pub fn numbers<T: HasId>(items: &[T]) -> Vec<u64> {
    items.iter().map(|item| number(item.message_id())).collect()
}

/// Appends chats `ns` (by [`chat`], content `"m{n}"`) to `room_name`, returning what was
/// stored.
pub async fn append_chats(
    store: &dyn Store,
    room_name: &str,
    ns: impl IntoIterator<Item = u64>,
) -> Vec<StoredChat> {
    let mut stored = Vec::new();
    for n in ns {
        let chat = chat(room_name, n, json!(format!("m{n}")));
        stored.push(store.append_chat(&chat).await.expect("append chat"));
    }
    stored
}

/// Subscription keys, as the store takes them.
pub fn keys(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|&k| k.to_owned()).collect()
}

/// Options of a persistent room with every field away from its default.
pub fn staff_room() -> RoomOptions {
    RoomOptions {
        max_clients: Some(25),
        persistent: true,
        roles: vec!["staff".to_owned(), "admin ★".to_owned()],
        presence: false,
    }
}

// ---------------------------------------------------------------------------------------
// Every test against every store
// ---------------------------------------------------------------------------------------

/// For each store under test (a [`Backend`] constructor, listed in the first rule), a
/// module of that name with one `#[tokio::test]` per `suite` test, each on a fresh store,
/// so a failure names both: `sqlite_file::chat_ids_are_per_room`. Stores marked
/// `(durable)` also run the `durable` tests, which take the [`Backend`] to open its URL
/// more than once (a restart, or two nodes on one database).
///
/// ```ignore
/// stores! {
///     suite: [a_test, another_test],
///     durable: [a_reopening_test],
/// }
/// ```
macro_rules! stores {
    // The stores under test, each a `Backend` constructor. `postgres` gets a fresh
    // schema per test, and skips (loudly) when the server is unreachable.
    (suite: $suite:tt, durable: $durable_tests:tt $(,)?) => {
        stores!(@stores $suite, $durable_tests; memory, sqlite_file (durable), postgres (durable));
    };
    (@stores $suite:tt, $durable_tests:tt; $($store:ident $(($durable:ident))?),*) => {
        $(
            mod $store {
                stores!(@suite $store; $suite);
                $(stores!(@$durable $store; $durable_tests);)?
            }
        )*
    };
    (@suite $store:ident; [$($test:ident),* $(,)?]) => {
        $(
            // Multi-threaded, so the concurrent tests really run in parallel.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() -> anyhow::Result<()> {
                super::run(super::Backend::$store().await, super::$test).await
            }
        )*
    };
    (@durable $store:ident; [$($test:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() -> anyhow::Result<()> {
                super::run_durable(super::Backend::$store().await, super::$test).await
            }
        )*
    };
}
