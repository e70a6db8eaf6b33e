//! The `roomcast` binary: reads the configuration (file, environment, flags), starts
//! tracing, binds, and runs the server until SIGINT or SIGTERM. `roomcast token` prints a
//! token signed with the configured secret.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use roomcast_protocol::{User, UserId};
use roomcast_server::{Config, Settings};
use tracing_subscriber::EnvFilter;

/// Roomcast: a real-time messaging server for web apps (WebSocket at /ws, HTTP API at /api).
///
/// Every setting can be given as a flag, as an environment variable (shown in brackets),
/// or in a TOML file passed with --config (same names in snake_case, e.g.
/// `heartbeat_interval_ms = 25000`). Flags and environment win over the file.
/// Logging follows ROOMCAST_LOG (a tracing filter such as `info` or `roomcast_server=debug`).
#[derive(Debug, Parser)]
#[command(name = "roomcast", version, about, long_about)]
struct Cli {
    /// TOML configuration file
    #[arg(long, short, env = "ROOMCAST_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default)
    Serve,
    /// Print a client token signed with the configured secret
    Token {
        /// User id (the token's `sub`)
        #[arg(long)]
        user: String,
        /// Role, repeatable
        #[arg(long = "role")]
        roles: Vec<String>,
        /// Display name
        #[arg(long)]
        name: Option<String>,
        /// Lifetime in seconds
        #[arg(long, default_value_t = 3600)]
        ttl_seconds: u64,
    },
}

#[allow(clippy::print_stdout)]
fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    let settings = cli.settings.or(file);
    match cli.command {
        Some(Command::Token {
            user,
            roles,
            name,
            ttl_seconds,
        }) => {
            let secret = Config::jwt_secret(&settings)?;
            let user = User::new(UserId::new(user)?, name, roles, serde_json::Map::new());
            let token = roomcast_server::auth::Authenticator::new(&secret, false)
                .issue(&user, Some(ttl_seconds))?;
            println!("{token}");
            Ok(())
        }
        Some(Command::Serve) | None => serve(Config::from_settings(settings)?),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("ROOMCAST_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.server.bind)
            .await
            .with_context(|| format!("binding {}", config.server.bind))?;
        let addr = listener.local_addr()?;
        if config.server.dev {
            print_dev_banner(&config, addr)?;
        }
        roomcast_server::run(listener, config, shutdown_signal()).await?;
        Ok(())
    })
}

/// Dev mode: says so loudly, and prints the well-known credentials and demo tokens.
#[allow(clippy::print_stdout)]
fn print_dev_banner(config: &Config, addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let auth = roomcast_server::auth::Authenticator::new(&config.auth.jwt_secret, false);
    let token = |id: &str, name: &str, role: &str| -> anyhow::Result<String> {
        let user = User::new(
            UserId::new(id)?,
            Some(name.into()),
            vec![role.into()],
            serde_json::Map::new(),
        );
        Ok(auth.issue(&user, Some(86_400))?)
    };
    let alice = token("alice", "Alice", "admin")?;
    let bob = token("bob", "Bob", "user")?;
    println!("roomcast dev mode: NOT for production (well-known secret and API key)");
    println!("  demo app:      http://{addr}/ (pick any name)");
    println!("  as Alice:      http://{addr}/?user=alice&role=admin");
    println!("  as Bob:        http://{addr}/?user=bob");
    println!("  websocket:     ws://{addr}/ws?token={bob}");
    println!("  api key:       {}", config.auth.api_key);
    println!("  jwt secret:    {}", config.auth.jwt_secret);
    println!("  token (alice, role admin, 24 h): {alice}");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("signal received");
}
