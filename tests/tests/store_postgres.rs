//! What only the PostgreSQL store has, through the public `store::open`: a server that is
//! not there (at open, and going away under a running store, then coming back), and the
//! URL's `search_path` placing the whole store, migrations table included, in one schema
//! of a shared database. Needs the test PostgreSQL server (skipped loudly without it,
//! failed under `ROOMCAST_REQUIRE_SERVICES=1`), except the first test. The behaviour every store shares is the suite's
//! (`store.rs`, `store_ids.rs`, `store_conversations.rs`), which runs on PostgreSQL too.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use roomcast_protocol::{MessageId, RoomName, User, UserId};
use roomcast_server::ServerError;
use roomcast_server::store::{self, NewChat, Store};
use roomcast_tests::proxy::Proxy;
use roomcast_tests::services::{self, PgSchema};
use serde_json::{Map, json};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The pool's wait for a connection (3 s), plus room for a slow machine.
const BOUND: Duration = Duration::from_secs(6);

fn chat(n: u64) -> NewChat {
    NewChat {
        room: RoomName::new("lobby").expect("room name"),
        from: User::new(
            UserId::new("alice").expect("user id"),
            None,
            Vec::new(),
            Map::new(),
        ),
        message: json!(n),
        timestamp: 1_700_000_000_000 + n,
    }
}

fn id(n: u64) -> MessageId {
    store::sequence_id(n)
}

/// The store error a call ended with, or why it is not one.
fn store_message<T: std::fmt::Debug>(result: Result<T, ServerError>) -> Result<String> {
    match result {
        Err(ServerError::Store(message)) => Ok(message),
        other => anyhow::bail!("expected a store error, got {other:?}"),
    }
}

#[tokio::test]
async fn opening_a_server_that_is_not_there_fails_fast_and_says_so() -> Result<()> {
    for url in [
        "postgres://postgres@127.0.0.1:1/test",
        "postgresql://postgres:secret@127.0.0.1:1/test?options=-csearch_path=x",
    ] {
        let started = Instant::now();
        let opened = tokio::time::timeout(BOUND, store::open(url))
            .await
            .with_context(|| format!("open {url} hung"))?;
        let message = store_message(opened)?;
        assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
        assert!(
            message.contains("store unavailable") && message.contains("127.0.0.1:1"),
            "says what is unreachable: {message}"
        );
        assert!(!message.contains("secret"), "never the password: {message}");
    }
    Ok(())
}
/// `schema`'s URL with the server's `host:port` (its target) replaced by `addr`.
fn through(schema: &PgSchema, target: &str, addr: SocketAddr) -> Result<String> {
    let url = schema.url();
    anyhow::ensure!(
        url.contains(target),
        "the test database URL {} must spell out {target} for the proxy to replace it",
        services::database_url()
    );
    Ok(url.replacen(target, &addr.to_string(), 1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_server_goes_away_fails_in_bounded_time_and_recovers_by_itself() -> Result<()>
{
    let Some(schema) = PgSchema::create().await else {
        return Ok(());
    };
    let options = PgConnectOptions::from_str(&schema.url())?;
    let target = format!("{}:{}", options.get_host(), options.get_port());
    let mut proxy = Proxy::start(&target).await;
    let url = through(&schema, &target, proxy.addr)?;
    let store = store::open(&url).await?;
    assert_eq!(store.append_chat(&chat(1)).await?.id, id(1));

    proxy.cut();
    // A write and a read at once, so the test waits out the pool's timeout only once.
    let started = Instant::now();
    let room = chat(0).room;
    let (appended, read) = tokio::time::timeout(
        BOUND,
        futures_util::future::join(
            store.append_chat(&chat(2)),
            store.chat_history(&room, 10, None),
        ),
    )
    .await
    .context("a call while the server is away hung")?;
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
    for message in [store_message(appended)?, store_message(read)?] {
        assert!(message.starts_with("store unavailable"), "{message}");
    }

    proxy.restore().await;
    // The same store, not reopened: the pool connects again by itself. The appends that
    // failed used up no id.
    assert_eq!(store.append_chat(&chat(3)).await?.id, id(2));
    let history = store.chat_history(&chat(0).room, 10, None).await?;
    assert_eq!(
        history
            .iter()
            .map(|c| c.message.clone())
            .collect::<Vec<_>>(),
        [json!(1), json!(3)]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_store_lives_in_the_schema_its_url_names() -> Result<()> {
    let (Some(first), Some(second)) = (PgSchema::create().await, PgSchema::create().await) else {
        return Ok(());
    };
    let stores: Vec<Arc<dyn Store>> = vec![
        store::open(&first.url()).await?,
        store::open(&second.url()).await?,
    ];
    assert_eq!(stores[0].append_chat(&chat(1)).await?.id, id(1));
    assert_eq!(stores[0].append_chat(&chat(2)).await?.id, id(2));
    assert_eq!(
        stores[1].append_chat(&chat(3)).await?.id,
        id(1),
        "the second schema has its own counters"
    );
    assert_eq!(
        stores[1].chat_history(&chat(0).room, 10, None).await?.len(),
        1
    );

    // Reopening finds the schema migrated: nothing runs twice, nothing is lost.
    let again = store::open(&first.url()).await?;
    assert_eq!(again.append_chat(&chat(4)).await?.id, id(3));

    let mut conn = PgConnection::connect(&services::database_url()).await?;
    for schema in [&first, &second] {
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = $1 ORDER BY table_name",
        )
        .bind(&schema.name)
        .fetch_all(&mut conn)
        .await?;
        assert!(
            tables.iter().any(|t| t == "_sqlx_migrations")
                && tables.iter().any(|t| t == "room_seq"),
            "{}: {tables:?}",
            schema.name
        );
        let applied: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {}._sqlx_migrations WHERE success",
            schema.name
        )))
        .fetch_one(&mut conn)
        .await?;
        assert_eq!(applied, 1, "{}", schema.name);
    }
    conn.close().await?;
    Ok(())
}
