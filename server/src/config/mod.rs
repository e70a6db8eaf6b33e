//! Configuration: one [`Settings`] struct read three ways with the same names: a TOML file
//! (`bind = "..."`), environment variables (`ROOMCAST_BIND`) and flags (`--bind`).
//! Flags and environment win over the file, the file wins over the defaults. [`Config`] is
//! the validated result the server runs with, in groups: `server`, `auth`, `timeouts`,
//! `limits`, `store`, `features`. Every setting is declared once, below, through
//! [`layout::settings!`], which makes its flag, variable, key, layering and field.

mod cluster;
mod layout;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::builder::BoolishValueParser;
use roomcast_protocol::RoomName;

pub use self::cluster::BrokerUrl;
use self::cluster::{broker_url, node_id, node_ttl, redis_prefix};
use crate::ServerError;

/// The well-known development secret; refused outside dev mode.
pub const DEV_JWT_SECRET: &str = "roomcast-dev-secret-DO-NOT-USE-IN-PRODUCTION";
/// The well-known development API key; refused outside dev mode.
pub const DEV_API_KEY: &str = "roomcast-dev-api-key";

/// The longest default ack timeout.
const MAX_ACK_TIMEOUT_MS: u64 = 300_000;

layout::settings! {
    /// Where the server listens, and how it runs.
    server: ServerSettings {
        /// Address to listen on [default: 127.0.0.1:8080]
        bind: SocketAddr, "ROOMCAST_BIND"
            => bind: SocketAddr = or_default(SocketAddr::from(([127, 0, 0, 1], 8080)));
        /// Dev mode: well-known default secret and API key, printed at start
        #[arg(num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
        dev: bool, "ROOMCAST_DEV" => dev: bool = or_default(false);
        /// Directory served at `/` (the demo app lives in `www/`)
        static_dir: PathBuf, "ROOMCAST_STATIC_DIR" => static_dir: Option<PathBuf> = optional();
        /// Run the demo feed: simulated stock ticks on topic `stocks` and scores in rooms
        /// `game-1` to `game-3`
        #[arg(num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
        demo: bool, "ROOMCAST_DEMO" => demo: bool = or_default(false);
    }
    /// Who may connect and call the API.
    auth: AuthSettings {
        /// HS256 secret that signs client tokens (required outside dev mode)
        #[arg(hide_env_values = true)]
        jwt_secret: String, "ROOMCAST_JWT_SECRET"
            => jwt_secret: String = secret(DEV_JWT_SECRET, "jwt_secret / ROOMCAST_JWT_SECRET");
        /// Key backends send as `Authorization: Bearer <key>` (required outside dev mode)
        #[arg(hide_env_values = true)]
        api_key: String, "ROOMCAST_API_KEY"
            => api_key: String = secret(DEV_API_KEY, "api_key / ROOMCAST_API_KEY");
        /// Accept tokens without `exp`
        #[arg(num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
        allow_tokens_without_expiry: bool, "ROOMCAST_ALLOW_TOKENS_WITHOUT_EXPIRY"
            => allow_tokens_without_expiry: bool = or_default(false);
    }
    /// How long things may take.
    timeouts: Timeouts {
        /// Close connections that have not authenticated after this long [default: 10000]
        auth_timeout_ms: u64, "ROOMCAST_AUTH_TIMEOUT_MS" => auth: Duration = millis(10_000);
        /// Send a heartbeat `ping` this often [default: 25000]
        heartbeat_interval_ms: u64, "ROOMCAST_HEARTBEAT_INTERVAL_MS"
            => heartbeat_interval: Duration = millis(25_000);
        /// Close with 4002 when no frame arrives this long after a `ping` [default: 10000]
        heartbeat_timeout_ms: u64, "ROOMCAST_HEARTBEAT_TIMEOUT_MS"
            => heartbeat_timeout: Duration = millis(10_000);
        /// How long acknowledged deliveries wait by default (default 30000 ms, at most
        /// 300000).
        ack_timeout_ms: u64, "ROOMCAST_ACK_TIMEOUT_MS"
            => ack: Duration = millis_at_most(30_000, MAX_ACK_TIMEOUT_MS);
        /// ... or this long after its first message (default 100 ms).
        batch_window_ms: u64, "ROOMCAST_BATCH_WINDOW_MS" => batch_window: Duration = millis(100);
        /// How long a webhook call may take (default 5000 ms).
        webhook_timeout_ms: u64, "ROOMCAST_WEBHOOK_TIMEOUT_MS"
            => webhook: Duration = millis(5_000);
    }
    /// How much of everything a client or the server may have.
    limits: Limits {
        /// Messages per second per connection [default: 50]
        rate_limit_per_sec: u32, "ROOMCAST_RATE_LIMIT_PER_SEC"
            => rate_limit_per_sec: u32 = positive(50);
        /// Burst size per connection [default: 100]
        rate_limit_burst: u32, "ROOMCAST_RATE_LIMIT_BURST" => rate_limit_burst: u32 = positive(100);
        /// Total connections; the upgrade is refused with HTTP 503 past it [default: 100000]
        max_connections: usize, "ROOMCAST_MAX_CONNECTIONS"
            => max_connections: usize = positive(100_000);
        /// Connections per user; the newest gets 4009 past it [default: 10]
        max_connections_per_user: usize, "ROOMCAST_MAX_CONNECTIONS_PER_USER"
            => max_connections_per_user: usize = positive(10);
        /// Largest inbound frame in bytes; bigger closes with 1009 [default: 65536]
        max_frame_bytes: usize, "ROOMCAST_MAX_FRAME_BYTES"
            => max_frame_bytes: usize = positive(64 * 1024);
        /// Largest chat/private `content` in bytes (a string's UTF-8 bytes, other JSON's
        /// serialized size) [default: 4096]
        max_content_bytes: usize, "ROOMCAST_MAX_CONTENT_BYTES"
            => max_content_bytes: usize = positive(4 * 1024);
        /// Rooms one connection may be in [default: 100]
        max_rooms_per_connection: usize, "ROOMCAST_MAX_ROOMS_PER_CONNECTION"
            => max_rooms_per_connection: usize = positive(100);
        /// Rooms sending user_join/user_leave only up to this many users [default: 1000]
        presence_limit: usize, "ROOMCAST_PRESENCE_LIMIT" => presence_limit: usize = positive(1000);
        /// Users a joiner's user_list carries at most; `members` pages the rest [default: 100]
        user_list_limit: usize, "ROOMCAST_USER_LIST_LIMIT" => user_list_limit: usize = positive(100);
        /// Bytes a connection may have waiting to be written; a frame past them closes it
        /// with 4029, but a frame alone always fits [default: 1048576]
        send_queue_bytes: usize, "ROOMCAST_SEND_QUEUE_BYTES"
            => send_queue_bytes: usize = positive(1024 * 1024);
        /// Most messages a `join` with `since` replays (default 1000); past it the newest are
        /// replayed and `recovered` is false.
        replay_limit: u32, "ROOMCAST_REPLAY_LIMIT" => replay_limit: u32 = positive(1000);
        /// A room's `batch_messages` goes out at this many messages (default 50).
        batch_max_messages: usize, "ROOMCAST_BATCH_MAX_MESSAGES"
            => batch_max_messages: usize = positive(50);
    }
    /// Where durable state lives.
    store: StoreSettings {
        /// Store URL: `sqlite://path` (created if missing), `sqlite::memory:`, or
        /// `postgres://user@host:port/db` (a cluster's shared store; `options=-csearch_path=NAME`
        /// selects a schema) [default: sqlite://roomcast.db]
        store: String, "ROOMCAST_STORE" => url: String = or_default("sqlite://roomcast.db".to_owned());
    }
    /// How this node finds the others (CONTRACT §10, docs/cluster.md).
    cluster: ClusterSettings {
        /// Fan-out: `local` (one node) or `redis://host:port/db` (a cluster) [default: local]
        broker: String, "ROOMCAST_BROKER" => broker: BrokerUrl = broker_url();
        /// This node's id in the cluster [default: a fresh random id per start]
        node_id: String, "ROOMCAST_NODE_ID" => node_id: String = node_id();
        /// Prefix of every Redis key and channel [default: roomcast]
        redis_prefix: String, "ROOMCAST_REDIS_PREFIX"
            => redis_prefix: String = redis_prefix();
        /// How often a node tells the others it is alive [default: 2000]
        node_heartbeat_ms: u64, "ROOMCAST_NODE_HEARTBEAT_MS"
            => node_heartbeat: Duration = millis(2_000);
        /// A node silent this long is dead: its members leave presence [default: 6000]
        node_ttl_ms: u64, "ROOMCAST_NODE_TTL_MS" => node_ttl: Duration = node_ttl(6_000);
    }
    /// What the server does beyond the contract's minimum.
    features: Features {
        /// Rooms every authenticated connection joins, comma-separated
        #[arg(value_delimiter = ',')]
        default_rooms: Vec<String>, "ROOMCAST_DEFAULT_ROOMS"
            => default_rooms: Vec<RoomName> = room_names();
        /// Messages at least this many bytes go `compressed` to connections that asked
        /// (default 1024).
        compression_threshold: usize, "ROOMCAST_COMPRESSION_THRESHOLD"
            => compression_threshold: usize = positive(1024);
        /// The application's HTTP handler: `connect`, `message` and `close` events are POSTed
        /// here (none by default).
        webhook_url: String, "ROOMCAST_WEBHOOK_URL" => webhook_url: Option<String> = http_url();
        /// Push `stats_update` this often to every connection of a user with the `admin` role
        /// (off by default; the demo runs it at 1000 ms)
        stats_interval_ms: u64, "ROOMCAST_STATS_INTERVAL_MS"
            => stats_interval: Option<Duration> = optional_millis();
    }
}

impl Settings {
    /// Reads a TOML file of settings (same names as the flags, in snake_case).
    ///
    /// # Errors
    /// [`ServerError::ConfigFile`] when it cannot be read, [`ServerError::Config`] when it
    /// is not valid TOML or names an unknown setting.
    pub fn from_file(path: &Path) -> Result<Self, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::ConfigFile {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ServerError::Config(format!("{}: {e}", path.display())))
    }
}

impl Config {
    /// A dev-mode configuration with every default: what tests start from.
    pub fn dev() -> Self {
        Self::from_settings(Settings {
            dev: Some(true),
            ..Settings::default()
        })
        .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }

    /// The token secret alone, validated as [`Self::from_settings`] does: what signing a
    /// token needs (the API key is not).
    ///
    /// # Errors
    /// [`ServerError::Config`] outside dev mode without a secret or with the development one.
    pub fn jwt_secret(s: &Settings) -> Result<String, ServerError> {
        secret(
            s,
            s.jwt_secret.clone(),
            "jwt_secret",
            DEV_JWT_SECRET,
            "jwt_secret / ROOMCAST_JWT_SECRET",
        )
    }
}

// The resolvers: each turns one setting (unset = `None`) into its field, or refuses it
// naming the setting. They all take the whole `Settings` so one can depend on another
// (the secrets on dev mode).

fn or_default<T>(
    _: &Settings,
    value: Option<T>,
    _name: &str,
    default: T,
) -> Result<T, ServerError> {
    Ok(value.unwrap_or(default))
}

fn optional<T>(_: &Settings, value: Option<T>, _name: &str) -> Result<Option<T>, ServerError> {
    Ok(value)
}

fn positive<T: Default + PartialEq + Copy>(
    _: &Settings,
    value: Option<T>,
    name: &str,
    default: T,
) -> Result<T, ServerError> {
    match value {
        Some(v) if v == T::default() => Err(ServerError::Config(format!(
            "{name} must be greater than 0"
        ))),
        Some(v) => Ok(v),
        None => Ok(default),
    }
}

fn millis(
    s: &Settings,
    value: Option<u64>,
    name: &str,
    default: u64,
) -> Result<Duration, ServerError> {
    positive(s, value, name, default).map(Duration::from_millis)
}

fn millis_at_most(
    s: &Settings,
    value: Option<u64>,
    name: &str,
    default: u64,
    max: u64,
) -> Result<Duration, ServerError> {
    match positive(s, value, name, default)? {
        ms if ms > max => Err(ServerError::Config(format!(
            "{name} must be at most {max} ({} minutes)",
            max / 60_000
        ))),
        ms => Ok(Duration::from_millis(ms)),
    }
}

/// Unset means "never"; zero is refused rather than read as "always".
fn optional_millis(
    _: &Settings,
    value: Option<u64>,
    name: &str,
) -> Result<Option<Duration>, ServerError> {
    match value {
        Some(0) => Err(ServerError::Config(format!(
            "{name} must be greater than 0 (leave it unset for none)"
        ))),
        ms => Ok(ms.map(Duration::from_millis)),
    }
}

fn secret(
    s: &Settings,
    value: Option<String>,
    _name: &str,
    dev_default: &str,
    label: &str,
) -> Result<String, ServerError> {
    let dev = s.dev.unwrap_or(false);
    match value {
        Some(v) if v.is_empty() => Err(ServerError::Config(format!("{label} must not be empty"))),
        Some(v) if v == dev_default && !dev => Err(ServerError::Config(format!(
            "{label} is the development default; set a real one or run in dev mode (ROOMCAST_DEV=1)"
        ))),
        Some(v) => Ok(v),
        None if dev => Ok(dev_default.to_owned()),
        None => Err(ServerError::Config(format!(
            "{label} is not set; set it or run in dev mode (ROOMCAST_DEV=1)"
        ))),
    }
}

fn room_names(
    _: &Settings,
    value: Option<Vec<String>>,
    name: &str,
) -> Result<Vec<RoomName>, ServerError> {
    value
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .map(|r| RoomName::new(r).map_err(|e| ServerError::Config(format!("{name}: {e}"))))
        .collect()
}

/// TLS for outgoing calls comes with the hardening milestone; until then an https URL
/// would fail every call, so it is refused at start. Empty means none.
fn http_url(
    _: &Settings,
    value: Option<String>,
    name: &str,
) -> Result<Option<String>, ServerError> {
    match value.filter(|u| !u.trim().is_empty()) {
        Some(url) if !url.starts_with("http://") => Err(ServerError::Config(format!(
            "{name} {url:?} must be an http:// URL (https is not supported yet)"
        ))),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_start_without_secrets_outside_dev_mode() {
        let err = Config::from_settings(Settings::default()).unwrap_err();
        assert!(err.to_string().contains("jwt_secret"), "{err}");
        let s = Settings {
            jwt_secret: Some(DEV_JWT_SECRET.into()),
            api_key: Some("k".into()),
            ..Settings::default()
        };
        assert!(
            Config::from_settings(s)
                .unwrap_err()
                .to_string()
                .contains("development default")
        );
        let s = Settings {
            jwt_secret: Some("s".into()),
            api_key: Some("k".into()),
            ..Settings::default()
        };
        assert_eq!(Config::from_settings(s).unwrap().auth.jwt_secret, "s");
    }

    #[test]
    fn dev_mode_fills_in_the_well_known_defaults() {
        let config = Config::dev();
        assert_eq!(config.auth.jwt_secret, DEV_JWT_SECRET);
        assert_eq!(config.auth.api_key, DEV_API_KEY);
        assert_eq!(config.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.timeouts.heartbeat_interval, Duration::from_secs(25));
    }

    #[test]
    fn webhook_must_be_plain_http_and_empty_means_none() {
        let with = |url: &str| {
            Config::from_settings(Settings {
                dev: Some(true),
                webhook_url: Some(url.into()),
                ..Settings::default()
            })
        };
        assert_eq!(
            with("http://127.0.0.1:9000/hook")
                .unwrap()
                .features
                .webhook_url
                .as_deref(),
            Some("http://127.0.0.1:9000/hook")
        );
        assert_eq!(with("").unwrap().features.webhook_url, None);
        for bad in ["https://example.com/hook", "ftp://x", "example.com"] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains("http://"), "{bad}: {err}");
        }
    }

    #[test]
    fn ack_timeout_is_bounded() {
        let with = |ms| {
            Config::from_settings(Settings {
                dev: Some(true),
                ack_timeout_ms: Some(ms),
                ..Settings::default()
            })
        };
        assert_eq!(
            with(300_000).unwrap().timeouts.ack,
            Duration::from_secs(300)
        );
        assert!(with(300_001).unwrap_err().to_string().contains("300000"));
    }

    #[test]
    fn upper_layers_win_and_zero_is_refused() {
        let file: Settings = toml::from_str(
            "bind = \"127.0.0.1:9000\"\nrate_limit_burst = 5\ndefault_rooms = [\"lobby\"]",
        )
        .unwrap();
        let flags = Settings {
            rate_limit_burst: Some(7),
            dev: Some(true),
            ..Settings::default()
        };
        let config = Config::from_settings(flags.or(file)).unwrap();
        assert_eq!(config.server.bind.port(), 9000);
        assert_eq!(config.limits.rate_limit_burst, 7);
        assert_eq!(config.features.default_rooms[0].as_str(), "lobby");
        let zero = Settings {
            dev: Some(true),
            max_connections: Some(0),
            ..Settings::default()
        };
        assert!(
            Config::from_settings(zero)
                .unwrap_err()
                .to_string()
                .contains("max_connections")
        );
    }

    #[test]
    fn stats_pushes_are_off_unless_an_interval_is_set() {
        assert_eq!(Config::dev().features.stats_interval, None);
        let every = |ms| {
            Config::from_settings(Settings {
                dev: Some(true),
                stats_interval_ms: Some(ms),
                ..Settings::default()
            })
        };
        assert_eq!(
            every(250).unwrap().features.stats_interval,
            Some(Duration::from_millis(250))
        );
        assert!(
            every(0)
                .unwrap_err()
                .to_string()
                .contains("stats_interval_ms")
        );
    }

    #[test]
    fn every_setting_has_one_name_three_ways() {
        use clap::{Args, Command};
        let command = Settings::augment_args(Command::new("roomcast"));
        let mut count = 0;
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            assert_eq!(arg.get_long(), Some(id.replace('_', "-").as_str()), "{id}");
            let env = arg.get_env().and_then(|e| e.to_str()).unwrap_or_default();
            assert_eq!(env, format!("ROOMCAST_{}", id.to_uppercase()), "{id}");
            // The TOML key is the field name: a file setting it is read.
            let file = format!("{id} = {}", toml_sample(id));
            toml::from_str::<Settings>(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
            count += 1;
        }
        assert!(
            count >= 34,
            "{count} settings: every one of today's is there"
        );
    }

    /// A TOML value of the setting's type.
    fn toml_sample(id: &str) -> &'static str {
        match id {
            "bind" => "\"127.0.0.1:1\"",
            "dev" | "demo" | "allow_tokens_without_expiry" => "true",
            "jwt_secret" | "api_key" | "store" | "static_dir" | "webhook_url" | "broker"
            | "node_id" | "redis_prefix" => "\"x\"",
            "default_rooms" => "[\"lobby\"]",
            _ => "1",
        }
    }

    #[test]
    fn one_node_by_default_and_cluster_settings_are_checked() {
        let config = Config::dev();
        assert_eq!(config.cluster.broker, BrokerUrl::Local);
        assert_eq!(config.cluster.redis_prefix, "roomcast");
        assert_eq!(config.store.url, "sqlite://roomcast.db");
        assert_ne!(
            config.cluster.node_id,
            Config::dev().cluster.node_id,
            "a fresh node id per start"
        );
        let with = |s: Settings| {
            Config::from_settings(Settings {
                dev: Some(true),
                ..s
            })
        };
        let redis = with(Settings {
            broker: Some("redis://127.0.0.1:6379/0".into()),
            store: Some("postgres://postgres@127.0.0.1:5432/test".into()),
            node_id: Some("node-a".into()),
            node_heartbeat_ms: Some(200),
            node_ttl_ms: Some(1_000),
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(
            redis.cluster.broker,
            BrokerUrl::Redis("redis://127.0.0.1:6379/0".into())
        );
        assert_eq!(redis.cluster.node_id, "node-a");
        assert_eq!(redis.cluster.node_ttl, Duration::from_secs(1));
        for (bad, named) in [
            (
                Settings {
                    broker: Some("nats://x".into()),
                    ..Settings::default()
                },
                "broker",
            ),
            (
                Settings {
                    node_id: Some("a b".into()),
                    ..Settings::default()
                },
                "node_id",
            ),
            (
                Settings {
                    redis_prefix: Some(String::new()),
                    ..Settings::default()
                },
                "redis_prefix",
            ),
            (
                Settings {
                    node_heartbeat_ms: Some(1_000),
                    node_ttl_ms: Some(1_500),
                    ..Settings::default()
                },
                "node_ttl_ms",
            ),
        ] {
            let err = with(bad).unwrap_err().to_string();
            assert!(err.contains(named), "{named}: {err}");
        }
    }

    #[test]
    fn a_redis_broker_needs_a_shared_store() {
        let with = |store: Option<&str>| {
            Config::from_settings(Settings {
                dev: Some(true),
                broker: Some("redis://127.0.0.1:6379/0".into()),
                store: store.map(str::to_owned),
                ..Settings::default()
            })
        };
        for store in [
            None,
            Some("sqlite://nodes.db"),
            Some("sqlite::memory:"),
            Some(" sqlite://x.db "),
        ] {
            let err = with(store).unwrap_err().to_string();
            assert!(
                err.contains("ROOMCAST_BROKER")
                    && err.contains("needs a store every node shares")
                    && err.contains("ROOMCAST_STORE=postgres://"),
                "{store:?}: {err}"
            );
            assert!(!err.contains('\n'), "one line: {err}");
        }
        for store in [
            "postgres://postgres@127.0.0.1:5432/test",
            "postgresql://u:p@db/app?options=-csearch_path=s",
        ] {
            let config = with(Some(store)).unwrap();
            assert!(
                matches!(config.cluster.broker, BrokerUrl::Redis(_)),
                "{store}"
            );
        }
        // One node may keep any store.
        let local = Config::from_settings(Settings {
            dev: Some(true),
            store: Some("sqlite::memory:".into()),
            ..Settings::default()
        });
        assert_eq!(local.unwrap().cluster.broker, BrokerUrl::Local);
    }

    #[test]
    fn unknown_file_settings_are_errors() {
        assert!(toml::from_str::<Settings>("bnd = \"x\"").is_err());
    }
}
