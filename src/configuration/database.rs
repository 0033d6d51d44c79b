//! `[database]`: PostgreSQL.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::{is_loopback_host, SettingsError};

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    pub create_if_missing: bool,
}

impl DatabaseSettings {
    /// Connection options from the URL. Without an explicit `sslmode`, a loopback or Unix-socket
    /// server is reached without TLS: there is no wire to protect, and TLS costs both sides CPU.
    pub fn connect_options(&self) -> Result<PgConnectOptions, SettingsError> {
        let url = self.url.expose_secret();
        let options = url
            .parse::<PgConnectOptions>()
            .map_err(|e| SettingsError::DatabaseUrl(e.to_string()))?;
        let host = options.get_host();
        let local = host.starts_with('/') || is_loopback_host(host);
        if local && !url.contains("sslmode=") {
            return Ok(options.ssl_mode(PgSslMode::Disable));
        }
        Ok(options)
    }

    pub(super) fn check(&self) -> Result<(), SettingsError> {
        self.connect_options()?;
        if self.max_connections == 0 {
            return Err(SettingsError::Zero("database.max_connections"));
        }
        Ok(())
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_secs)
    }
}
