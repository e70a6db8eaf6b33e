//! The `roomcast` binary's command line and configuration: `--help`, refusing to start
//! without real secrets, the `token` subcommand, and configuration layering (file <
//! environment < flags) with a clear refusal of a bad file, and of a cluster on a
//! per-node store. A running server's shutdown, dev mode and stores: `cli_server.rs`.
//!
//! Every child runs with a cleared environment (nothing from the test run leaks in) on a
//! port picked free just before, and is killed when its guard drops, so no server
//! outlives its test.

mod cli_common;

use std::path::Path;

use cli_common::*;
use roomcast_server::config::{DEV_API_KEY, DEV_JWT_SECRET};
use serde_json::{Value, json};

/// Every setting's environment variable, as `--help` must list them.
const ENV_VARS: [&str; 30] = [
    "ROOMCAST_CONFIG",
    "ROOMCAST_BIND",
    "ROOMCAST_JWT_SECRET",
    "ROOMCAST_API_KEY",
    "ROOMCAST_DEV",
    "ROOMCAST_ALLOW_TOKENS_WITHOUT_EXPIRY",
    "ROOMCAST_AUTH_TIMEOUT_MS",
    "ROOMCAST_HEARTBEAT_INTERVAL_MS",
    "ROOMCAST_HEARTBEAT_TIMEOUT_MS",
    "ROOMCAST_RATE_LIMIT_PER_SEC",
    "ROOMCAST_RATE_LIMIT_BURST",
    "ROOMCAST_MAX_CONNECTIONS",
    "ROOMCAST_MAX_CONNECTIONS_PER_USER",
    "ROOMCAST_MAX_FRAME_BYTES",
    "ROOMCAST_MAX_CONTENT_BYTES",
    "ROOMCAST_MAX_ROOMS_PER_CONNECTION",
    "ROOMCAST_PRESENCE_LIMIT",
    "ROOMCAST_SEND_QUEUE_BYTES",
    "ROOMCAST_DEFAULT_ROOMS",
    "ROOMCAST_STATIC_DIR",
    "ROOMCAST_STORE",
    "ROOMCAST_COMPRESSION_THRESHOLD",
    "ROOMCAST_REPLAY_LIMIT",
    "ROOMCAST_BATCH_MAX_MESSAGES",
    "ROOMCAST_BATCH_WINDOW_MS",
    "ROOMCAST_ACK_TIMEOUT_MS",
    "ROOMCAST_WEBHOOK_URL",
    "ROOMCAST_WEBHOOK_TIMEOUT_MS",
    "ROOMCAST_STATS_INTERVAL_MS",
    "ROOMCAST_DEMO",
];

fn write_file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write config file");
    path
}

#[test]
fn help_lists_every_setting_with_its_env_var() {
    let mut command = roomcast();
    command.arg("--help");
    let (status, stdout, stderr) = run_to_exit(command);
    assert!(status.success(), "{status}\n{stderr}");
    let missing: Vec<_> = ENV_VARS
        .iter()
        .filter(|var| !stdout.contains(*var))
        .collect();
    assert!(missing.is_empty(), "--help omits {missing:?}:\n{stdout}");
}

/// Environment variables for a child: name, value.
type Env = &'static [(&'static str, &'static str)];

#[test]
fn refuses_to_start_without_real_secrets_outside_dev_mode() {
    const JWT: &str = "ROOMCAST_JWT_SECRET";
    const KEY: &str = "ROOMCAST_API_KEY";
    // (case, environment, what the error must name)
    #[rustfmt::skip]
    let cases: [(&str, Env, &str); 6] = [
        ("nothing set",     &[],                                  JWT),
        ("dev mode off",    &[("ROOMCAST_DEV", "0"), (KEY, "k")], JWT),
        ("no API key",      &[(JWT, "s")],                        KEY),
        ("no secret",       &[(KEY, "k")],                        JWT),
        ("the dev secret",  &[(JWT, DEV_JWT_SECRET), (KEY, "k")], JWT),
        ("the dev API key", &[(JWT, "s"), (KEY, DEV_API_KEY)],    KEY),
    ];
    for (case, env, needle) in cases {
        let addr = free_addr();
        let mut command = roomcast();
        command
            .envs(env.iter().copied())
            .arg("--bind")
            .arg(addr.to_string());
        let (status, stdout, stderr) = run_to_exit(command);
        assert!(
            !status.success(),
            "{case}: started anyway\n{stdout}{stderr}"
        );
        assert!(
            stderr.contains(needle),
            "{case}: the error does not name {needle}:\n{stderr}"
        );
        if env
            .iter()
            .any(|(_, v)| *v == DEV_JWT_SECRET || *v == DEV_API_KEY)
        {
            assert!(
                stderr.contains("development default"),
                "{case}: the error does not say why:\n{stderr}"
            );
        }
        assert!(http(addr, "/healthz", None).is_none(), "{case}: port open");
    }
}

#[test]
fn token_needs_only_the_jwt_secret() {
    let mut command = roomcast();
    command
        .env("ROOMCAST_JWT_SECRET", "x")
        .args(["token", "--user", "alice"]);
    let (status, stdout, stderr) = run_to_exit(command);
    assert!(status.success(), "{status}\n{stderr}");
    assert!(find_jwt(&stdout).is_some(), "no token on stdout: {stdout}");
}

#[tokio::test]
async fn token_prints_a_jwt_with_the_claims_that_the_server_accepts() {
    let mut command = roomcast();
    command
        .env("ROOMCAST_JWT_SECRET", "x")
        .env("ROOMCAST_API_KEY", "k")
        .args([
            "token", "--user", "alice", "--role", "admin", "--name", "Alice",
        ]);
    let (status, stdout, stderr) = run_to_exit(command);
    assert!(status.success(), "{status}\n{stderr}");
    let token = stdout.trim();
    assert_eq!(find_jwt(token).as_deref(), Some(token), "stdout: {stdout}");
    // Decoding checks the signature with the secret too.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    let claims = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(b"x"),
        &validation,
    )
    .expect("an HS256 token signed with the secret")
    .claims;
    assert_eq!(claims["sub"], "alice", "{claims}");
    assert_eq!(claims["roles"], json!(["admin"]), "{claims}");
    assert_eq!(claims["name"], "Alice", "{claims}");
    let exp = claims["exp"].as_u64().expect("numeric exp");
    assert!(exp > now_secs(), "exp in the past: {claims}");

    let addr = free_addr();
    let mut server = roomcast();
    server
        .env("ROOMCAST_JWT_SECRET", "x")
        .env("ROOMCAST_API_KEY", "k")
        .args(["--bind", &addr.to_string()]);
    let _server = Process::serve(server, addr);
    let (_ws, ok) = ws_login(addr, token).await;
    assert_eq!(ok["userId"], "alice", "{ok}");
    assert_eq!(ok["user"]["name"], "Alice", "{ok}");
    assert_eq!(ok["user"]["roles"], json!(["admin"]), "{ok}");
}

#[test]
fn a_config_file_sets_the_address_and_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let file = write_file(
        dir.path(),
        "roomcast.toml",
        &format!(
            "bind = \"{addr}\"\njwt_secret = \"file-secret\"\napi_key = \"file-key\"\n\
             rate_limit_burst = 7\n"
        ),
    );
    let mut command = roomcast();
    command.arg("--config").arg(&file);
    let _server = Process::serve(command, addr);
    assert_eq!(stats_status(addr, "file-key"), 200);
    assert_eq!(stats_status(addr, "wrong-key"), 401);
    assert_eq!(http(addr, "/api/stats", None).map(|r| r.0), Some(401));
}

#[test]
fn env_overrides_the_file_and_flags_override_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file_addr = free_addr();
    let file = write_file(
        dir.path(),
        "roomcast.toml",
        &format!("bind = \"{file_addr}\"\njwt_secret = \"file-secret\"\napi_key = \"file-key\"\n"),
    );

    // The environment beats the file (the file is named by ROOMCAST_CONFIG here).
    let env_addr = free_addr();
    let mut command = roomcast();
    command
        .env("ROOMCAST_CONFIG", &file)
        .env("ROOMCAST_BIND", env_addr.to_string())
        .env("ROOMCAST_API_KEY", "env-key");
    let server = Process::serve(command, env_addr);
    assert_eq!(stats_status(env_addr, "env-key"), 200);
    assert_eq!(stats_status(env_addr, "file-key"), 401);
    assert!(
        http(file_addr, "/healthz", None).is_none(),
        "bound the file's address"
    );
    drop(server);

    // Flags beat the environment.
    let flag_addr = free_addr();
    let mut command = roomcast();
    command
        .env("ROOMCAST_BIND", env_addr.to_string())
        .env("ROOMCAST_API_KEY", "env-key")
        .arg("--config")
        .arg(&file)
        .args(["--bind", &flag_addr.to_string(), "--api-key", "flag-key"]);
    let _server = Process::serve(command, flag_addr);
    assert_eq!(stats_status(flag_addr, "flag-key"), 200);
    assert_eq!(stats_status(flag_addr, "env-key"), 401);
    assert!(
        http(env_addr, "/healthz", None).is_none(),
        "bound the env's address"
    );
}

/// A Redis broker on a per-node store would run a cluster whose nodes number chats each
/// on its own: refused before anything opens (no Redis or PostgreSQL is needed to see
/// it), in one line that says what to set, with exit code 1 like every config error.
#[test]
fn a_cluster_on_a_per_node_store_is_refused() {
    // (case, ROOMCAST_STORE; `None`: unset, the default ./roomcast.db)
    let cases = [
        ("SQLite in memory", Some("sqlite::memory:")),
        ("SQLite file", Some("sqlite://nodes.db")),
        ("the default store", None),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    for (case, store) in cases {
        let addr = free_addr();
        let mut command = roomcast();
        command
            .env("ROOMCAST_JWT_SECRET", "s")
            .env("ROOMCAST_API_KEY", "k")
            .env("ROOMCAST_BROKER", "redis://127.0.0.1:6379/0")
            .env("RUST_BACKTRACE", "0")
            .args(["--bind", &addr.to_string()])
            .current_dir(dir.path());
        match store {
            Some(url) => command.env("ROOMCAST_STORE", url),
            None => command.env_remove("ROOMCAST_STORE"),
        };
        let (status, stdout, stderr) = run_to_exit(command);
        assert_eq!(status.code(), Some(1), "{case}: {status}\n{stdout}{stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{case}: one line, not:\n{stderr}");
        for needle in [
            "ROOMCAST_BROKER=redis://",
            "needs a store every node shares",
            "set ROOMCAST_STORE=postgres://",
        ] {
            assert!(
                lines[0].contains(needle),
                "{case}: no `{needle}` in: {}",
                lines[0]
            );
        }
        assert!(http(addr, "/healthz", None).is_none(), "{case}: port open");
        assert!(
            !dir.path().join("roomcast.db").exists() && !dir.path().join("nodes.db").exists(),
            "{case}: a store was created before the refusal"
        );
    }
}

#[test]
fn a_bad_config_file_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unknown = write_file(
        dir.path(),
        "unknown.toml",
        "jwt_secret = \"s\"\napi_key = \"k\"\nbnd = \"127.0.0.1:1\"\n",
    );
    let missing = dir.path().join("missing.toml");
    // (case, file, what the error must mention)
    let cases = [
        ("unknown key", &unknown, vec!["bnd", "unknown.toml"]),
        ("missing file", &missing, vec!["missing.toml"]),
    ];
    for (case, file, needles) in cases {
        let addr = free_addr();
        let mut command = roomcast();
        command
            .arg("--config")
            .arg(file)
            .args(["--bind", &addr.to_string()]);
        let (status, _, stderr) = run_to_exit(command);
        assert!(!status.success(), "{case}: started anyway");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{case}: no `{needle}` in:\n{stderr}"
            );
        }
    }
}
