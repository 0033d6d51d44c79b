//! The RouterOS v7 REST client for one router (basic auth over HTTPS): its DHCP leases and its
//! Wi-Fi registration table, typed by [`super::routeros`]. The router's certificate must verify
//! against the system's roots, or be the one `mikrotik.ca_file` or `mikrotik.fingerprint` pins
//! (see [`super::pinning`]); `mikrotik.insecure` skips verification, with a warning.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::routeros::{self, Lease, Station};
use crate::configuration::MikrotikSettings;

/// The registration tables of RouterOS's `wifi` package (v7.13 on) and of the older `wireless`.
const WIFI_PATHS: [&str; 2] = [
    "/interface/wifi/registration-table",
    "/interface/wireless/registration-table",
];

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("cannot reach the router: {0}")]
    Request(String),
    #[error("the router answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the router's answer is not what RouterOS sends: {0}")]
    Answer(String),
    #[error(
        "the router sent an answer over {0} bytes (mikrotik.max_answer_bytes); it was not read"
    )]
    TooLarge(usize),
}

/// A RouterOS REST client for one router.
#[derive(Clone)]
pub struct MikrotikClient {
    http: reqwest::Client,
    /// `https://router/rest`, without a trailing slash.
    base: String,
    username: String,
    password: Option<SecretString>,
    /// `mikrotik.max_answer_bytes`.
    limit: usize,
    /// Which registration table answers, once known (`None` inside: neither does).
    wifi: Arc<Mutex<Option<Option<&'static str>>>>,
}

impl MikrotikClient {
    pub fn new(settings: &MikrotikSettings, url: &str) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms.max(1)))
            .user_agent(concat!("devicehub/", env!("CARGO_PKG_VERSION")));
        // The router's own certificate (ca_file, or its fingerprint) is pinned: a self-signed
        // certificate marked CA:TRUE, as RouterOS and `openssl req -x509` make them, is accepted
        // as itself; a real CA in ca_file verifies a chain.
        let trust = super::pinning::Trust::from_settings(
            settings.ca_file.as_deref(),
            settings.fingerprint.as_deref(),
            "mikrotik",
        )?;
        http = super::with_trust(http, trust)?;
        if settings.insecure {
            tracing::warn!(
                url,
                "mikrotik.insecure: the router's certificate is NOT verified; anyone on the path \
                 can read the router password. Prefer mikrotik.ca_file"
            );
            http = http.danger_accept_invalid_certs(true);
        }
        Ok(Self {
            http: http.build()?,
            base: url.trim_end_matches('/').to_owned(),
            username: settings.username.clone(),
            password: settings.password.clone(),
            limit: settings.max_answer_bytes,
            wifi: Default::default(),
        })
    }

    async fn get(&self, path: &str) -> Result<Value, PollError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .basic_auth(
                &self.username,
                self.password.as_ref().map(|p| p.expose_secret().to_owned()),
            )
            .send()
            .await
            .map_err(|e| PollError::Request(super::error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            let body = super::read_capped(response, 4096)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            return Err(PollError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).chars().take(200).collect(),
            });
        }
        let body = super::read_capped(response, self.limit)
            .await
            .map_err(|e| PollError::Request(super::error_chain(&e)))?
            .ok_or(PollError::TooLarge(self.limit))?;
        serde_json::from_slice(&body).map_err(|e| PollError::Answer(e.to_string()))
    }

    pub async fn leases(&self) -> Result<Vec<Lease>, PollError> {
        routeros::leases(&self.get("/ip/dhcp-server/lease").await?).map_err(PollError::Answer)
    }

    /// The Wi-Fi stations, from whichever registration table the router has; `None` when it
    /// has neither (no Wi-Fi).
    pub async fn stations(&self) -> Result<Option<Vec<Station>>, PollError> {
        let known = self.wifi.lock().ok().and_then(|w| *w);
        let candidates: Vec<&'static str> = match known {
            Some(Some(path)) => vec![path],
            Some(None) => return Ok(None),
            None => WIFI_PATHS.to_vec(),
        };
        for path in candidates {
            match self.get(path).await {
                Ok(answer) => {
                    if let Ok(mut w) = self.wifi.lock() {
                        *w = Some(Some(path));
                    }
                    return routeros::stations(&answer)
                        .map(Some)
                        .map_err(PollError::Answer);
                }
                // RouterOS answers 400 or 404 for a menu its packages do not have.
                Err(PollError::Status {
                    status: 400 | 404, ..
                }) if known.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
        tracing::info!(router = %self.base, "the router has no Wi-Fi registration table; presence stays unknown");
        if let Ok(mut w) = self.wifi.lock() {
            *w = Some(None);
        }
        Ok(None)
    }
}
