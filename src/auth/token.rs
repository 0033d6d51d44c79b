use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::Role;
use crate::error::ApiError;

const ISSUER: &str = "devicehub";
/// The issuer of stream tickets: a ticket is no access token and an access token no ticket.
const TICKET_ISSUER: &str = "devicehub-stream";

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

/// Signs and verifies access tokens (and stream tickets) with one HS256 secret.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ticket_validation: Validation,
    ttl_secs: u64,
}

impl TokenIssuer {
    pub fn new(secret: &SecretString, ttl_secs: u64) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        let mut ticket_validation = validation.clone();
        ticket_validation.set_issuer(&[TICKET_ISSUER]);
        ticket_validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            ticket_validation,
            ttl_secs,
        }
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub fn issue(&self, username: &str, role: Role) -> Result<String, ApiError> {
        self.sign(username, role, ISSUER, self.ttl_secs)
    }

    /// A stream ticket: what a browser's `EventSource`, which cannot send headers, puts in the
    /// URL instead of its access token. It lives `ttl_secs` and opens streams only.
    pub fn issue_ticket(
        &self,
        username: &str,
        role: Role,
        ttl_secs: u64,
    ) -> Result<String, ApiError> {
        self.sign(username, role, TICKET_ISSUER, ttl_secs)
    }

    fn sign(
        &self,
        username: &str,
        role: Role,
        iss: &str,
        ttl_secs: u64,
    ) -> Result<String, ApiError> {
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
            exp: now + ttl_secs,
            iss: iss.into(),
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

    pub fn verify_ticket(&self, ticket: &str) -> Result<Claims, ApiError> {
        decode::<Claims>(ticket, &self.decoding, &self.ticket_validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => ApiError::Unauthorized(
                    "stream ticket expired; ask POST /api/stream/ticket for another",
                ),
                _ => ApiError::Unauthorized("invalid stream ticket"),
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
    fn ticket_and_access_token_are_not_interchangeable() {
        let i = issuer(&"k".repeat(32), 60);
        let ticket = i.issue_ticket("ann", Role::Viewer, 30).unwrap();
        let token = i.issue("ann", Role::Viewer).unwrap();
        assert_eq!(i.verify_ticket(&ticket).unwrap().sub, "ann");
        assert!(i.verify(&ticket).is_err());
        assert!(i.verify_ticket(&token).is_err());
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
