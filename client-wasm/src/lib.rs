//! Roomcast browser SDK. For now this crate proves the protocol crate builds for
//! `wasm32-unknown-unknown` and gives the SDK its home; the client itself is the SDK issue.

use roomcast_protocol::{ClientFrame, ClientMessage, RequestId};

/// Encodes the `auth` frame a client sends first.
pub fn auth_frame(token: &str, id: Option<RequestId>) -> String {
    ClientFrame {
        id,
        message: ClientMessage::Auth {
            token: token.to_owned(),
        },
    }
    .encode()
}

#[cfg(test)]
mod tests {
    #[test]
    fn auth_frame_is_the_contract_json() {
        let json: serde_json::Value = serde_json::from_str(&super::auth_frame("t", None)).unwrap();
        assert_eq!(json, serde_json::json!({"type":"auth","token":"t"}));
    }
}
