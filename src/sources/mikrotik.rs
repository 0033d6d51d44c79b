//! The Mikrotik poller: every `mikrotik.interval_s` it reads the router's DHCP leases and its
//! Wi-Fi registration table over RouterOS v7 REST (basic auth, HTTPS) and keeps each answer as
//! a timestamped snapshot in the lake ([`crate::inventory::snapshots`]), records the hosts it
//! saw (a new one not in the device metadata raises an `unknown_device` alert,
//! [`crate::inventory::hosts`]) and brings the DuckDB inventory up to date.
//!
//! Trust: the router's certificate must verify against the system's roots or `mikrotik.ca_file`
//! (the CA, or the router's own self-signed certificate exported as PEM); `mikrotik.insecure`
//! skips verification, with a warning at start. Snapshots are best effort: a poll that fails,
//! or whose snapshot the object store refuses, is logged and the next poll comes one interval
//! later.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::routeros::{self, Lease, Station};
use crate::configuration::MikrotikSettings;
use crate::inventory::hosts::{self, Sighting};
use crate::inventory::{snapshots, Inventory};
use crate::stores::objects::ObjectStore;

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
}

/// A RouterOS REST client for one router.
#[derive(Clone)]
pub struct MikrotikClient {
    http: reqwest::Client,
    /// `https://router/rest`, without a trailing slash.
    base: String,
    username: String,
    password: Option<SecretString>,
    /// Which registration table answers, once known (`None` inside: neither does).
    wifi: Arc<Mutex<Option<Option<&'static str>>>>,
}

impl MikrotikClient {
    pub fn new(settings: &MikrotikSettings, url: &str) -> anyhow::Result<Self> {
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms.max(1)))
            .user_agent(concat!("devicehub/", env!("CARGO_PKG_VERSION")));
        // An empty setting (an unset variable in docker-compose.yml) is no CA file.
        if let Some(ca) = settings
            .ca_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            let pem = std::fs::read(ca).map_err(|e| {
                anyhow::anyhow!("cannot read mikrotik.ca_file {}: {e}", ca.display())
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                anyhow::anyhow!(
                    "mikrotik.ca_file {} holds no PEM certificate: {e}",
                    ca.display()
                )
            })?;
            for certificate in certificates {
                http = http.add_root_certificate(certificate);
            }
        }
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
            let body = response.text().await.unwrap_or_default();
            return Err(PollError::Status {
                status: status.as_u16(),
                body: body.chars().take(200).collect(),
            });
        }
        response
            .json()
            .await
            .map_err(|e| PollError::Answer(e.to_string()))
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

/// What one poll stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSummary {
    pub leases: usize,
    /// `None`: the router has no Wi-Fi.
    pub stations: Option<usize>,
    /// Hosts seen for the first time.
    pub new_hosts: usize,
}

/// Polls one router and keeps its snapshots in the lake.
#[derive(Clone)]
pub struct MikrotikPoller {
    client: MikrotikClient,
    objects: ObjectStore,
    pool: sqlx::PgPool,
    inventory: Inventory,
    interval: Duration,
    router: String,
}

impl MikrotikPoller {
    pub fn new(
        settings: &MikrotikSettings,
        url: &str,
        objects: ObjectStore,
        (pool, inventory): (sqlx::PgPool, Inventory),
    ) -> anyhow::Result<Self> {
        let router = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| url.to_owned());
        Ok(Self {
            client: MikrotikClient::new(settings, url)?,
            objects,
            pool,
            inventory,
            interval: Duration::from_secs(settings.interval_s.max(1)),
            router,
        })
    }

    /// One poll: the leases (an error fails the poll), then the Wi-Fi table (an error there
    /// is logged; the leases are kept), then the hosts it saw, then the inventory.
    pub async fn poll_once(&self) -> anyhow::Result<PollSummary> {
        let polled_at = Utc::now();
        let leases = self.client.leases().await?;
        let file = snapshots::leases_file(polled_at, &self.router, &leases)?;
        self.objects
            .put(
                &snapshots::snapshot_key(snapshots::LEASES_PREFIX, polled_at),
                file,
            )
            .await?;
        let mut seen: Vec<Sighting> = leases
            .iter()
            .map(|l| Sighting {
                mac: l.mac,
                ip: l.active_address.clone().or_else(|| l.address.clone()),
                host_name: l.host_name.clone(),
            })
            .collect();
        let stations = match self.client.stations().await {
            Ok(Some(stations)) => {
                for s in &stations {
                    if !seen.iter().any(|h| h.mac == s.mac) {
                        seen.push(Sighting {
                            mac: s.mac,
                            ip: None,
                            host_name: None,
                        });
                    }
                }
                let file = snapshots::wifi_file(polled_at, &self.router, &stations)?;
                self.objects
                    .put(
                        &snapshots::snapshot_key(snapshots::WIFI_PREFIX, polled_at),
                        file,
                    )
                    .await?;
                Some(stations.len())
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, router = %self.router, "cannot read the Wi-Fi registration table");
                None
            }
        };
        let metadata = self.inventory.metadata().current();
        let new_hosts = hosts::record(&self.pool, &seen, &metadata).await?.len();
        if let Err(e) = self.inventory.sync().await {
            tracing::warn!(error = %e, "cannot bring the inventory up to date");
        }
        Ok(PollSummary {
            leases: leases.len(),
            stations,
            new_hosts,
        })
    }

    /// Polls every interval until `shutdown`. A failing router is logged on the first failure
    /// and when it recovers, not on every poll.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut failing = false;
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            match self.poll_once().await {
                Ok(summary) => {
                    if failing {
                        tracing::info!(router = %self.router, "the router answers again");
                    }
                    failing = false;
                    tracing::debug!(router = %self.router, leases = summary.leases,
                        stations = ?summary.stations, "router polled");
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, router = %self.router, "cannot poll the router; retrying every interval");
                    }
                    failing = true;
                }
            }
        }
    }
}
