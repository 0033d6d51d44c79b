//! `[http]` and `[stream]`: the API's listener, bodies, CORS and the live stream.

use std::net::SocketAddr;

use serde::Deserialize;

use super::SettingsError;

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub bind: SocketAddr,
    pub max_body_bytes: usize,
    pub workers: usize,
    /// Origins (`https://console.example`) whose browser pages may call the API, with
    /// credentials; none by default.
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

/// The live stream for browsers (`GET /api/stream`).
#[derive(Debug, Clone, Deserialize)]
pub struct StreamSettings {
    /// Stream clients one process serves at once; more get 503.
    pub max_clients: usize,
    /// Seconds between heartbeats on an idle stream (and checks that its user may still look).
    pub heartbeat_secs: u64,
    /// Seconds a stream ticket opens streams for.
    pub ticket_ttl_secs: u64,
}

impl HttpSettings {
    pub(super) fn check(&self) -> Result<(), SettingsError> {
        for origin in &self.cors_origins {
            let valid = url::Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.origin().ascii_serialization() == origin.trim_end_matches('/')
            });
            if !valid {
                return Err(SettingsError::Invalid(format!(
                    "http.cors_origins: {origin:?} is not an origin (scheme://host[:port], no \
                     path; `*` is refused, since browsers send credentials)"
                )));
            }
        }
        if self.max_body_bytes == 0 {
            return Err(SettingsError::Zero("http.max_body_bytes"));
        }
        Ok(())
    }
}

impl StreamSettings {
    pub(super) fn check(&self) -> Result<(), SettingsError> {
        if self.heartbeat_secs == 0 || self.ticket_ttl_secs == 0 {
            return Err(SettingsError::Invalid(
                "stream.heartbeat_secs and stream.ticket_ttl_secs must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
