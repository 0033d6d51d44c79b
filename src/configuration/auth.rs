//! `[auth]` and `[log]`.

use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::SettingsError;

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub enabled: bool,
    pub jwt_secret: Option<SecretString>,
    pub token_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    /// A used refresh token presented again within this many seconds gets the same successor.
    pub refresh_reuse_grace_s: u64,
    pub login_attempts_per_minute: u32,
}

/// JWT secrets published with devicehub for development (`scripts/run.sh`): refused unless the
/// API listens on loopback only.
pub const DEV_JWT_SECRETS: &[&str] = &["dev-only-insecure-jwt-secret-change-me-0123456789"];

/// Shortest HS256 secret accepted (RFC 7518 asks for a key at least as long as the hash).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl AuthSettings {
    /// With auth on, a secret long enough and not the published development one (unless the
    /// API listens on loopback only).
    pub(super) fn check(&self, bind: SocketAddr) -> Result<(), SettingsError> {
        if self.enabled {
            let secret = self.jwt_secret.as_ref().map(|s| s.expose_secret());
            if secret.is_none_or(|s| s.len() < MIN_JWT_SECRET_BYTES) {
                return Err(SettingsError::WeakJwtSecret);
            }
            if secret.is_some_and(|s| DEV_JWT_SECRETS.contains(&s)) && !bind.ip().is_loopback() {
                return Err(SettingsError::Invalid(format!(
                    "auth.jwt_secret is devicehub's published development secret, which anyone \
                     can sign tokens with; it is refused unless http.bind is a loopback address \
                     (it is {bind}). Set DEVICEHUB__AUTH__JWT_SECRET (e.g. `openssl rand -base64 48`)"
                )));
            }
        }
        if self.token_ttl_secs == 0 {
            return Err(SettingsError::Zero("auth.token_ttl_secs"));
        }
        if self.login_attempts_per_minute == 0 {
            return Err(SettingsError::Zero("auth.login_attempts_per_minute"));
        }
        Ok(())
    }
}
