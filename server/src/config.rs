//! Configuration: one [`Settings`] struct read three ways with the same names: a TOML file
//! (`bind = "..."`), environment variables (`ROOMCAST_BIND`) and flags (`--bind`).
//! Flags and environment win over the file, the file wins over the defaults. [`Config`] is
//! the validated result the server runs with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use clap::builder::BoolishValueParser;
use roomcast_protocol::RoomName;
use serde::Deserialize;

use crate::ServerError;

/// The well-known development secret; refused outside dev mode.
pub const DEV_JWT_SECRET: &str = "roomcast-dev-secret-DO-NOT-USE-IN-PRODUCTION";
/// The well-known development API key; refused outside dev mode.
pub const DEV_API_KEY: &str = "roomcast-dev-api-key";

/// Every setting, unset ones `None`. Flags, environment and TOML share these names.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "ROOMCAST_BIND", global = true)]
    pub bind: Option<SocketAddr>,
    /// HS256 secret that signs client tokens (required outside dev mode)
    #[arg(
        long,
        env = "ROOMCAST_JWT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub jwt_secret: Option<String>,
    /// Key backends send as `Authorization: Bearer <key>` (required outside dev mode)
    #[arg(long, env = "ROOMCAST_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,
    /// Dev mode: well-known default secret and API key, printed at start
    #[arg(long, env = "ROOMCAST_DEV", global = true, num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub dev: Option<bool>,
    /// Accept tokens without `exp`
    #[arg(long, env = "ROOMCAST_ALLOW_TOKENS_WITHOUT_EXPIRY", global = true, num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_tokens_without_expiry: Option<bool>,
    /// Close connections that have not authenticated after this long [default: 10000]
    #[arg(long, env = "ROOMCAST_AUTH_TIMEOUT_MS", global = true)]
    pub auth_timeout_ms: Option<u64>,
    /// Send a heartbeat `ping` this often [default: 25000]
    #[arg(long, env = "ROOMCAST_HEARTBEAT_INTERVAL_MS", global = true)]
    pub heartbeat_interval_ms: Option<u64>,
    /// Close with 4002 when no frame arrives this long after a `ping` [default: 10000]
    #[arg(long, env = "ROOMCAST_HEARTBEAT_TIMEOUT_MS", global = true)]
    pub heartbeat_timeout_ms: Option<u64>,
    /// Messages per second per connection [default: 50]
    #[arg(long, env = "ROOMCAST_RATE_LIMIT_PER_SEC", global = true)]
    pub rate_limit_per_sec: Option<u32>,
    /// Burst size per connection [default: 100]
    #[arg(long, env = "ROOMCAST_RATE_LIMIT_BURST", global = true)]
    pub rate_limit_burst: Option<u32>,
    /// Total connections; the upgrade is refused with HTTP 503 past it [default: 100000]
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,
    /// Connections per user; the newest gets 4009 past it [default: 10]
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS_PER_USER", global = true)]
    pub max_connections_per_user: Option<usize>,
    /// Largest inbound frame in bytes; bigger closes with 1009 [default: 65536]
    #[arg(long, env = "ROOMCAST_MAX_FRAME_BYTES", global = true)]
    pub max_frame_bytes: Option<usize>,
    /// Largest chat/private `content` in bytes of JSON [default: 4096]
    #[arg(long, env = "ROOMCAST_MAX_CONTENT_BYTES", global = true)]
    pub max_content_bytes: Option<usize>,
    /// Rooms one connection may be in [default: 100]
    #[arg(long, env = "ROOMCAST_MAX_ROOMS_PER_CONNECTION", global = true)]
    pub max_rooms_per_connection: Option<usize>,
    /// Rooms sending user_join/user_leave only up to this many users [default: 1000]
    #[arg(long, env = "ROOMCAST_PRESENCE_LIMIT", global = true)]
    pub presence_limit: Option<usize>,
    /// Messages queued per connection before it is closed with 4029 [default: 1024]
    #[arg(long, env = "ROOMCAST_SEND_QUEUE", global = true)]
    pub send_queue: Option<usize>,
    /// Rooms every authenticated connection joins, comma-separated
    #[arg(
        long,
        env = "ROOMCAST_DEFAULT_ROOMS",
        global = true,
        value_delimiter = ','
    )]
    pub default_rooms: Option<Vec<String>>,
    /// Store URL: `sqlite://path` (created if missing) or `sqlite::memory:` [default: sqlite://roomcast.db]
    #[arg(long, env = "ROOMCAST_STORE", global = true)]
    pub store: Option<String>,
    /// Directory served at `/` (the demo app lives in `www/`)
    #[arg(long, env = "ROOMCAST_STATIC_DIR", global = true)]
    pub static_dir: Option<PathBuf>,
    /// Messages at least this many bytes go `compressed` to connections that asked
    /// (default 1024).
    #[arg(long, env = "ROOMCAST_COMPRESSION_THRESHOLD", global = true)]
    pub compression_threshold: Option<usize>,
    /// Most messages a `join` with `since` replays (default 1000); past it the newest are
    /// replayed and `recovered` is false.
    #[arg(long, env = "ROOMCAST_REPLAY_LIMIT", global = true)]
    pub replay_limit: Option<u32>,
    /// A room's `batch_messages` goes out at this many messages (default 50).
    #[arg(long, env = "ROOMCAST_BATCH_MAX_MESSAGES", global = true)]
    pub batch_max_messages: Option<usize>,
    /// ... or this long after its first message (default 100 ms).
    #[arg(long, env = "ROOMCAST_BATCH_WINDOW_MS", global = true)]
    pub batch_window_ms: Option<u64>,
    /// How long acknowledged deliveries wait by default (default 30000 ms).
    #[arg(long, env = "ROOMCAST_ACK_TIMEOUT_MS", global = true)]
    pub ack_timeout_ms: Option<u64>,
    /// The application's HTTP handler: `connect`, `message` and `close` events are POSTed
    /// here (none by default).
    #[arg(long, env = "ROOMCAST_WEBHOOK_URL", global = true)]
    pub webhook_url: Option<String>,
    /// How long a webhook call may take (default 5000 ms).
    #[arg(long, env = "ROOMCAST_WEBHOOK_TIMEOUT_MS", global = true)]
    pub webhook_timeout_ms: Option<u64>,
    /// Push `stats_update` this often to every connection of a user with the `admin` role
    /// (off by default; the demo runs it at 1000 ms)
    #[arg(long, env = "ROOMCAST_STATS_INTERVAL_MS", global = true)]
    pub stats_interval_ms: Option<u64>,
    /// Run the demo feed: simulated stock ticks on topic `stocks` and scores in rooms
    /// `game-1` to `game-3`
    #[arg(long, env = "ROOMCAST_DEMO", global = true, num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub demo: Option<bool>,
}

/// Applies `$field = $field.or(lower.$field)` to every field.
macro_rules! layer {
    ($upper:ident, $lower:ident, $($field:ident),* $(,)?) => {
        Settings { $($field: $upper.$field.or($lower.$field)),* }
    };
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

    /// `self` where set, else `lower`.
    pub fn or(self, lower: Settings) -> Settings {
        let upper = self;
        layer!(
            upper,
            lower,
            bind,
            jwt_secret,
            api_key,
            dev,
            allow_tokens_without_expiry,
            auth_timeout_ms,
            heartbeat_interval_ms,
            heartbeat_timeout_ms,
            rate_limit_per_sec,
            rate_limit_burst,
            max_connections,
            max_connections_per_user,
            max_frame_bytes,
            max_content_bytes,
            max_rooms_per_connection,
            presence_limit,
            send_queue,
            default_rooms,
            store,
            static_dir,
            compression_threshold,
            replay_limit,
            batch_max_messages,
            batch_window_ms,
            ack_timeout_ms,
            webhook_url,
            webhook_timeout_ms,
            stats_interval_ms,
            demo,
        )
    }
}

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub bind: SocketAddr,
    /// HS256 token secret.
    pub jwt_secret: String,
    /// API key for `/api`.
    pub api_key: String,
    /// Dev mode.
    pub dev: bool,
    /// Accept tokens without `exp`.
    pub allow_tokens_without_expiry: bool,
    /// Auth timeout.
    pub auth_timeout: Duration,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
    /// Heartbeat timeout.
    pub heartbeat_timeout: Duration,
    /// Rate limit, messages per second.
    pub rate_limit_per_sec: u32,
    /// Rate limit burst.
    pub rate_limit_burst: u32,
    /// Total connection limit.
    pub max_connections: usize,
    /// Per-user connection limit.
    pub max_connections_per_user: usize,
    /// Inbound frame limit in bytes.
    pub max_frame_bytes: usize,
    /// `content` limit in bytes.
    pub max_content_bytes: usize,
    /// Rooms per connection.
    pub max_rooms_per_connection: usize,
    /// Presence limit.
    pub presence_limit: usize,
    /// Send queue length per connection.
    pub send_queue: usize,
    /// Rooms joined on authentication.
    pub default_rooms: Vec<RoomName>,
    /// Store URL.
    pub store: String,
    /// Static directory served at `/`.
    pub static_dir: Option<PathBuf>,
    /// Compress messages of at least this many bytes for connections that asked.
    pub compression_threshold: usize,
    /// Most messages one `join` with `since` replays.
    pub replay_limit: u32,
    /// Batch size that flushes a room's batch at once.
    pub batch_max_messages: usize,
    /// How long a room's batch waits after its first message.
    pub batch_window: Duration,
    /// Default wait for acknowledgements.
    pub ack_timeout: Duration,
    /// The application's webhook, if any.
    pub webhook_url: Option<String>,
    /// Timeout of each webhook call.
    pub webhook_timeout: Duration,
    /// How often admins get `stats_update`, if at all.
    pub stats_interval: Option<Duration>,
    /// Whether the demo feed runs.
    pub demo: bool,
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
        required(
            s.dev.unwrap_or(false),
            s.jwt_secret.clone(),
            DEV_JWT_SECRET,
            "jwt_secret / ROOMCAST_JWT_SECRET",
        )
    }

    /// Validates settings and fills in defaults.
    ///
    /// # Errors
    /// [`ServerError::Config`] outside dev mode without a secret or key (or with the
    /// development ones), for zero limits or intervals, and for invalid room names.
    pub fn from_settings(s: Settings) -> Result<Self, ServerError> {
        let dev = s.dev.unwrap_or(false);
        let jwt_secret = required(
            dev,
            s.jwt_secret,
            DEV_JWT_SECRET,
            "jwt_secret / ROOMCAST_JWT_SECRET",
        )?;
        let api_key = required(dev, s.api_key, DEV_API_KEY, "api_key / ROOMCAST_API_KEY")?;
        let default_rooms = s
            .default_rooms
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .map(|r| {
                RoomName::new(r).map_err(|e| ServerError::Config(format!("default_rooms: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let config = Self {
            bind: s
                .bind
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            jwt_secret,
            api_key,
            dev,
            allow_tokens_without_expiry: s.allow_tokens_without_expiry.unwrap_or(false),
            auth_timeout: Duration::from_millis(positive(
                s.auth_timeout_ms,
                10_000,
                "auth_timeout_ms",
            )?),
            heartbeat_interval: Duration::from_millis(positive(
                s.heartbeat_interval_ms,
                25_000,
                "heartbeat_interval_ms",
            )?),
            heartbeat_timeout: Duration::from_millis(positive(
                s.heartbeat_timeout_ms,
                10_000,
                "heartbeat_timeout_ms",
            )?),
            rate_limit_per_sec: positive(s.rate_limit_per_sec, 50, "rate_limit_per_sec")?,
            rate_limit_burst: positive(s.rate_limit_burst, 100, "rate_limit_burst")?,
            max_connections: positive(s.max_connections, 100_000, "max_connections")?,
            max_connections_per_user: positive(
                s.max_connections_per_user,
                10,
                "max_connections_per_user",
            )?,
            max_frame_bytes: positive(s.max_frame_bytes, 64 * 1024, "max_frame_bytes")?,
            max_content_bytes: positive(s.max_content_bytes, 4 * 1024, "max_content_bytes")?,
            max_rooms_per_connection: positive(
                s.max_rooms_per_connection,
                100,
                "max_rooms_per_connection",
            )?,
            presence_limit: positive(s.presence_limit, 1000, "presence_limit")?,
            send_queue: positive(s.send_queue, 1024, "send_queue")?,
            default_rooms,
            store: s.store.unwrap_or_else(|| "sqlite://roomcast.db".to_owned()),
            static_dir: s.static_dir,
            compression_threshold: positive(
                s.compression_threshold,
                1024,
                "compression_threshold",
            )?,
            replay_limit: positive(s.replay_limit, 1000, "replay_limit")?,
            batch_max_messages: positive(s.batch_max_messages, 50, "batch_max_messages")?,
            batch_window: Duration::from_millis(positive(
                s.batch_window_ms,
                100,
                "batch_window_ms",
            )?),
            ack_timeout: Duration::from_millis(
                match positive(s.ack_timeout_ms, 30_000, "ack_timeout_ms")? {
                    ms if ms > 300_000 => {
                        return Err(ServerError::Config(
                            "ack_timeout_ms must be at most 300000 (5 minutes)".into(),
                        ));
                    }
                    ms => ms,
                },
            ),
            webhook_url: match s.webhook_url.filter(|u| !u.trim().is_empty()) {
                // TLS for outgoing calls comes with the hardening milestone; until then an
                // https URL would fail every call, so it is refused at start.
                Some(url) if !url.starts_with("http://") => {
                    return Err(ServerError::Config(format!(
                        "webhook_url {url:?} must be an http:// URL (https is not supported yet)"
                    )));
                }
                other => other,
            },
            webhook_timeout: Duration::from_millis(positive(
                s.webhook_timeout_ms,
                5_000,
                "webhook_timeout_ms",
            )?),
            stats_interval: match s.stats_interval_ms {
                Some(0) => {
                    return Err(ServerError::Config(
                        "stats_interval_ms must be greater than 0 (leave it unset for none)".into(),
                    ));
                }
                ms => ms.map(Duration::from_millis),
            },
            demo: s.demo.unwrap_or(false),
        };
        Ok(config)
    }
}

fn required(
    dev: bool,
    value: Option<String>,
    dev_default: &str,
    name: &str,
) -> Result<String, ServerError> {
    match value {
        Some(v) if v.is_empty() => Err(ServerError::Config(format!("{name} must not be empty"))),
        Some(v) if v == dev_default && !dev => Err(ServerError::Config(format!(
            "{name} is the development default; set a real one or run in dev mode (ROOMCAST_DEV=1)"
        ))),
        Some(v) => Ok(v),
        None if dev => Ok(dev_default.to_owned()),
        None => Err(ServerError::Config(format!(
            "{name} is not set; set it or run in dev mode (ROOMCAST_DEV=1)"
        ))),
    }
}

fn positive<T: Default + PartialEq + Copy>(
    value: Option<T>,
    default: T,
    name: &str,
) -> Result<T, ServerError> {
    match value {
        Some(v) if v == T::default() => Err(ServerError::Config(format!(
            "{name} must be greater than 0"
        ))),
        Some(v) => Ok(v),
        None => Ok(default),
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
        assert_eq!(Config::from_settings(s).unwrap().jwt_secret, "s");
    }

    #[test]
    fn dev_mode_fills_in_the_well_known_defaults() {
        let config = Config::dev();
        assert_eq!(config.jwt_secret, DEV_JWT_SECRET);
        assert_eq!(config.api_key, DEV_API_KEY);
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.heartbeat_interval, Duration::from_secs(25));
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
                .webhook_url
                .as_deref(),
            Some("http://127.0.0.1:9000/hook")
        );
        assert_eq!(with("").unwrap().webhook_url, None);
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
        assert_eq!(with(300_000).unwrap().ack_timeout, Duration::from_secs(300));
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
        assert_eq!(config.bind.port(), 9000);
        assert_eq!(config.rate_limit_burst, 7);
        assert_eq!(config.default_rooms[0].as_str(), "lobby");
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
        assert_eq!(Config::dev().stats_interval, None);
        let every = |ms| {
            Config::from_settings(Settings {
                dev: Some(true),
                stats_interval_ms: Some(ms),
                ..Settings::default()
            })
        };
        assert_eq!(
            every(250).unwrap().stats_interval,
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
    fn unknown_file_settings_are_errors() {
        assert!(toml::from_str::<Settings>("bnd = \"x\"").is_err());
    }
}
