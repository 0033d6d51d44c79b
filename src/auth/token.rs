use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::Role;
use crate::error::ApiError;

const ISSUER: &str = "devicehub";

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iat: u64,
    /// `iat` in milliseconds, so that a token issued in the same second as a change of its
    /// user's role or password is told apart from one issued before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<u64>,
    pub exp: u64,
    pub iss: String,
}

impl Claims {
    /// When the token was issued, in Unix milliseconds.
    pub fn issued_ms(&self) -> i64 {
        self.iat_ms.unwrap_or(self.iat.saturating_mul(1000)) as i64
    }
}

/// Signs and verifies access tokens with one HS256 secret.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: u64,
}

impl TokenIssuer {
    pub fn new(secret: &SecretString, ttl_secs: u64) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            ttl_secs,
        }
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub fn issue(&self, username: &str, role: Role) -> Result<String, ApiError> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let now = now_ms / 1000;
        let claims = Claims {
            sub: username.to_owned(),
            role,
            iat: now,
            iat_ms: Some(now_ms),
            exp: now + self.ttl_secs,
            iss: ISSUER.into(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(e.into()))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::Unauthorized("token expired"),
                _ => ApiError::Unauthorized("invalid token"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(secret: &str, ttl: u64) -> TokenIssuer {
        TokenIssuer::new(&SecretString::from(secret.to_owned()), ttl)
    }

    #[test]
    fn issued_token_verifies_with_its_role() {
        let i = issuer(&"k".repeat(32), 60);
        let claims = i.verify(&i.issue("ann", Role::Operator).unwrap()).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("ann", Role::Operator));
    }

    #[test]
    fn token_from_another_secret_is_rejected() {
        let token = issuer(&"a".repeat(32), 60)
            .issue("ann", Role::Admin)
            .unwrap();
        assert!(issuer(&"b".repeat(32), 60).verify(&token).is_err());
    }

    #[test]
    fn expired_token_is_rejected_as_expired() {
        let i = issuer(&"k".repeat(32), 60);
        let claims = Claims {
            sub: "ann".into(),
            role: Role::Admin,
            iat: 1,
            iat_ms: None,
            exp: 2,
            iss: ISSUER.into(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &i.encoding).unwrap();
        assert!(matches!(
            i.verify(&token),
            Err(ApiError::Unauthorized("token expired"))
        ));
    }
}
