//! `sqlx::migrate!` embeds `migrations/sqlite/` and `migrations/postgres/` at compile
//! time, but cargo only tracks the files it included: without this, a new migration file
//! in either would not rebuild the crate and a stale binary would run without it.

fn main() {
    println!("cargo:rerun-if-changed=migrations/sqlite");
    println!("cargo:rerun-if-changed=migrations/postgres");
}
