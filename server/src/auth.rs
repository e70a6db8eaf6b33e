//! JWT authentication (CONTRACT §2): HS256 only, `sub` and (unless allowed) `exp` required,
//! no leeway. Verifying yields an [`Identity`]: the public [`User`] object every `from` is
//! built from, and the expiry to close the connection at.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use roomcast_protocol::{Timestamp, User, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ServerError;
use crate::clock::now_ms;

/// The claims Roomcast reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Extra public fields of the user object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Map<String, Value>>,
}

/// Who a valid token says the client is.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The public user object.
    pub user: User,
    /// When the token expires (ms), if it does.
    pub expires_at: Option<Timestamp>,
}

/// Signs and verifies tokens with the server's secret.
#[derive(Clone)]
pub struct Authenticator {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for `secret`; `allow_no_exp` accepts tokens without `exp`.
    pub fn new(secret: &str, allow_no_exp: bool) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // Roomcast has no audience of its own; an `aud` an issuer adds is not a reason to
        // refuse the token.
        validation.validate_aud = false;
        let mut required: HashSet<String> = HashSet::from(["sub".to_owned()]);
        if !allow_no_exp {
            required.insert("exp".to_owned());
        }
        validation.required_spec_claims = required;
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// Verifies a token.
    ///
    /// # Errors
    /// A human-readable reason when the signature, algorithm, expiry or claims are wrong.
    pub fn verify(&self, token: &str) -> Result<Identity, String> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| format!("invalid token: {e}"))?;
        let claims = data.claims;
        let user_id = UserId::new(claims.sub).map_err(|e| format!("invalid token: {e}"))?;
        Ok(Identity {
            user: User::new(
                user_id,
                claims.name,
                claims.roles.unwrap_or_default(),
                claims.info.unwrap_or_default(),
            ),
            expires_at: claims.exp.map(|s| s.saturating_mul(1000)),
        })
    }

    /// Signs a token for `user`, valid for `ttl_seconds` (no `exp` when `None`).
    ///
    /// # Errors
    /// [`ServerError::Token`] when signing fails.
    pub fn issue(&self, user: &User, ttl_seconds: Option<u64>) -> Result<String, ServerError> {
        let now = now_ms() / 1000;
        let claims = Claims {
            sub: user.user_id.to_string(),
            exp: ttl_seconds.map(|ttl| now.saturating_add(ttl)),
            iat: Some(now),
            roles: (!user.roles.is_empty()).then(|| user.roles.clone()),
            name: user.name.clone(),
            info: (!user.info.is_empty()).then(|| user.info.clone()),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> User {
        User::new(
            UserId::new("alice").unwrap(),
            Some("Alice".into()),
            vec!["admin".into()],
            Map::new(),
        )
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_user() {
        let auth = Authenticator::new("s3cret", false);
        let token = auth.issue(&alice(), Some(60)).unwrap();
        let identity = auth.verify(&token).unwrap();
        assert_eq!(identity.user, alice());
        assert!(identity.expires_at.unwrap() > now_ms());
    }

    #[test]
    fn wrong_secret_missing_exp_and_expired_tokens_fail() {
        let auth = Authenticator::new("s3cret", false);
        let other = Authenticator::new("other", false);
        assert!(
            auth.verify(&other.issue(&alice(), Some(60)).unwrap())
                .is_err()
        );
        let forever = auth.issue(&alice(), None).unwrap();
        assert!(auth.verify(&forever).is_err());
        assert!(Authenticator::new("s3cret", true).verify(&forever).is_ok());
        let claims = Claims {
            sub: "a".into(),
            exp: Some(now_ms() / 1000 - 5),
            iat: None,
            roles: None,
            name: None,
            info: None,
        };
        let expired = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert!(auth.verify(&expired).unwrap_err().contains("xpired"));
    }

    #[test]
    fn other_algorithms_are_refused() {
        let auth = Authenticator::new("s3cret", false);
        let claims = Claims {
            sub: "a".into(),
            exp: Some(now_ms() / 1000 + 60),
            iat: None,
            roles: None,
            name: None,
            info: None,
        };
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert!(auth.verify(&hs512).is_err());
    }
}
