use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{
    decode, encode, errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::Role;
use crate::error::ApiError;

const ISSUER: &str = "devicehub";

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
/// The issuer of stream tickets: a ticket is no access token and an access token no ticket.
const TICKET_ISSUER: &str = "devicehub-stream";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
    /// The user's token generation when issued: the token is refused once it moves (a change
    /// of role or password), whatever any clock says.
    #[serde(default)]
    pub gen: i64,
    /// The login (refresh family) the token belongs to: refused once that login is logged out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<uuid::Uuid>,
    /// A stream ticket's: when the access token it was asked with expires. Its stream ends
    /// then (`event: end`), and the client opens another with a fresh ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
}

/// Whom a token speaks for: a user with its role and token generation, in a login.
#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub role: Role,
    pub generation: i64,
    /// The refresh family of the login (`None`: a token made without one, by a test or tool).
    pub login: Option<uuid::Uuid>,
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

    /// An access token for `session`.
    pub fn issue(&self, session: &Session) -> Result<String, ApiError> {
        let now = now();
        self.sign(&Claims {
            sub: session.username.clone(),
            role: session.role,
            iat: now,
            exp: now + self.ttl_secs,
            iss: ISSUER.into(),
            gen: session.generation,
            sid: session.login,
            until: None,
        })
    }

    /// A stream ticket: what a browser's `EventSource`, which cannot send headers, puts in the
    /// URL instead of its access token. It opens streams only, for `ttl_secs`; it carries the
    /// access token's generation, login and expiry, and the stream it opens ends with them.
    pub fn issue_ticket(&self, access: &Claims, ttl_secs: u64) -> Result<String, ApiError> {
        let now = now();
        self.sign(&Claims {
            iat: now,
            exp: now + ttl_secs,
            iss: TICKET_ISSUER.into(),
            until: Some(access.until.unwrap_or(access.exp)),
            ..access.clone()
        })
    }

    fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
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

    fn session(username: &str, role: Role) -> Session {
        Session {
            username: username.into(),
            role,
            generation: 7,
            login: Some(uuid::Uuid::new_v4()),
        }
    }

    #[test]
    fn issued_token_verifies_with_its_role() {
        let i = issuer(&"k".repeat(32), 60);
        let session = session("ann", Role::Operator);
        let claims = i.verify(&i.issue(&session).unwrap()).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("ann", Role::Operator));
        assert_eq!((claims.gen, claims.sid), (7, session.login));
    }

    #[test]
    fn token_from_another_secret_is_rejected() {
        let token = issuer(&"a".repeat(32), 60)
            .issue(&session("ann", Role::Admin))
            .unwrap();
        assert!(issuer(&"b".repeat(32), 60).verify(&token).is_err());
    }

    #[test]
    fn ticket_and_access_token_are_not_interchangeable() {
        let i = issuer(&"k".repeat(32), 60);
        let token = i.issue(&session("ann", Role::Viewer)).unwrap();
        let access = i.verify(&token).unwrap();
        let ticket = i.issue_ticket(&access, 30).unwrap();
        let opened = i.verify_ticket(&ticket).unwrap();
        assert_eq!(opened.sub, "ann");
        assert_eq!((opened.gen, opened.sid), (access.gen, access.sid));
        assert_eq!(
            opened.until,
            Some(access.exp),
            "the stream ends with the access token"
        );
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
            exp: 2,
            iss: ISSUER.into(),
            gen: 0,
            sid: None,
            until: None,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &i.encoding).unwrap();
        assert!(matches!(
            i.verify(&token),
            Err(ApiError::Unauthorized("token expired"))
        ));
    }
}
