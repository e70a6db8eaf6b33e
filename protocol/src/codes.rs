//! Error codes (CONTRACT §3) and WebSocket close codes (§8).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The `code` of an `error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed frame or message: invalid JSON, missing or mistyped field, unknown type.
    BadRequest,
    /// A message other than `auth` before authentication.
    NotAuthenticated,
    /// The token in `auth` is invalid or expired.
    AuthFailed,
    /// The action is not allowed to this user.
    Forbidden,
    /// The named room, client, user or message does not exist.
    NotFound,
    /// The room is at its `maxClients`.
    RoomFull,
    /// The action needs room membership.
    NotMember,
    /// The connection exceeded its message rate.
    RateLimited,
    /// A field exceeds its size limit.
    TooLarge,
    /// A count limit was hit (connections per user, rooms per connection).
    LimitExceeded,
    /// The server failed; the request may be retried.
    Internal,
}

impl ErrorCode {
    /// Every code, in contract order.
    pub const ALL: [ErrorCode; 11] = [
        Self::BadRequest,
        Self::NotAuthenticated,
        Self::AuthFailed,
        Self::Forbidden,
        Self::NotFound,
        Self::RoomFull,
        Self::NotMember,
        Self::RateLimited,
        Self::TooLarge,
        Self::LimitExceeded,
        Self::Internal,
    ];

    /// The wire spelling, e.g. `"bad_request"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::NotAuthenticated => "not_authenticated",
            Self::AuthFailed => "auth_failed",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::RoomFull => "room_full",
            Self::NotMember => "not_member",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::LimitExceeded => "limit_exceeded",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the server closed a WebSocket (§8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// 1001: the server is shutting down.
    GoingAway = 1001,
    /// 1009: an inbound frame exceeded the size limit.
    TooBig = 1009,
    /// 4000: disconnected through the server API.
    Disconnected = 4000,
    /// 4001: authentication failed, timed out, or the token expired.
    AuthFailed = 4001,
    /// 4002: no frame within the heartbeat timeout.
    HeartbeatTimeout = 4002,
    /// 4003: refused by the application's connect handler.
    Refused = 4003,
    /// 4008: still sending after repeated `rate_limited` errors.
    RateLimitAbuse = 4008,
    /// 4009: over the per-user connection limit.
    ConnectionLimit = 4009,
    /// 4029: the connection's send queue overflowed.
    SlowConsumer = 4029,
}

impl CloseCode {
    /// The numeric code.
    pub const fn code(self) -> u16 {
        self as u16
    }

    /// Maps a numeric code back, `None` for codes the contract does not define.
    pub const fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            1001 => Self::GoingAway,
            1009 => Self::TooBig,
            4000 => Self::Disconnected,
            4001 => Self::AuthFailed,
            4002 => Self::HeartbeatTimeout,
            4003 => Self::Refused,
            4008 => Self::RateLimitAbuse,
            4009 => Self::ConnectionLimit,
            4029 => Self::SlowConsumer,
            _ => return None,
        })
    }

    /// Whether a client may reconnect on its own after this code (§8): not after 4000,
    /// 4001 (unless it can get a new token), 4003 and 4009.
    pub const fn allows_reconnect(self) -> bool {
        !matches!(
            self,
            Self::Disconnected | Self::AuthFailed | Self::Refused | Self::ConnectionLimit
        )
    }

    /// A short human reason to send in the close frame.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::GoingAway => "server shutting down",
            Self::TooBig => "frame too large",
            Self::Disconnected => "disconnected by the server",
            Self::AuthFailed => "authentication failed",
            Self::HeartbeatTimeout => "heartbeat timeout",
            Self::Refused => "refused by the application",
            Self::RateLimitAbuse => "rate limit abuse",
            Self::ConnectionLimit => "connection limit",
            Self::SlowConsumer => "slow consumer",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_have_their_wire_spelling() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
        }
    }

    #[test]
    fn close_codes_round_trip_and_say_whether_to_reconnect() {
        for code in [1001, 1009, 4000, 4001, 4002, 4003, 4008, 4009, 4029] {
            assert_eq!(CloseCode::from_code(code).unwrap().code(), code);
        }
        assert_eq!(CloseCode::from_code(1000), None);
        assert!(CloseCode::HeartbeatTimeout.allows_reconnect());
        assert!(CloseCode::GoingAway.allows_reconnect());
        assert!(!CloseCode::ConnectionLimit.allows_reconnect());
        assert!(!CloseCode::Disconnected.allows_reconnect());
    }
}
