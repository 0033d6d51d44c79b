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
    /// Reverse proxies (CIDRs) whose `X-Forwarded-For`/`Forwarded` name the client (for the
    /// login limits); none by default: only the TCP peer counts.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// `GET /metrics`.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricsSettings {
    /// A bearer token a scrape must present; none: `/metrics` is open, like most exporters.
    #[serde(default)]
    pub token: Option<secrecy::SecretString>,
}

impl MetricsSettings {
    /// The token, unless empty (an unset variable in docker-compose.yml).
    pub fn token(&self) -> Option<&secrecy::SecretString> {
        use secrecy::ExposeSecret;
        self.token
            .as_ref()
            .filter(|t| !t.expose_secret().is_empty())
    }
}

/// The live stream for browsers (`GET /api/stream`).
#[derive(Debug, Clone, Deserialize)]
pub struct StreamSettings {
    /// Stream clients one process serves at once; more get 503.
    pub max_clients: usize,
    /// Streams one user may hold open in one process; more get 429.
    pub max_clients_per_user: usize,
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
        self.trusted_proxies()?;
        Ok(())
    }

    /// `trusted_proxies` as networks (a bare address is its /32 or /128).
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, SettingsError> {
        super::networks("http.trusted_proxies", &self.trusted_proxies)
    }
}

impl StreamSettings {
    pub(super) fn check(&self) -> Result<(), SettingsError> {
        if self.heartbeat_secs == 0 || self.ticket_ttl_secs == 0 || self.max_clients_per_user == 0 {
            return Err(SettingsError::Invalid(
                "stream.heartbeat_secs, stream.ticket_ttl_secs and stream.max_clients_per_user \
                 must be at least 1"
                    .into(),
            ));
        }
        Ok(())
    }
}
