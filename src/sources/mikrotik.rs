//! The Mikrotik poller: every `mikrotik.interval_s` it reads the router's DHCP leases and its
//! Wi-Fi registration table over RouterOS v7 REST (basic auth, HTTPS) and keeps each answer as
//! a timestamped snapshot in the lake ([`crate::inventory::snapshots`]), records the hosts it
//! saw (a new one not in the device metadata raises an `unknown_device` alert,
//! [`crate::inventory::hosts`]) and brings the DuckDB inventory up to date.
//!
//! Trust: the router's certificate must verify against the system's roots or `mikrotik.ca_file`
//! (the CA, or the router's own self-signed certificate exported as PEM); `mikrotik.insecure`
//! skips verification, with a warning at start. Snapshots are best effort: a poll that fails,
//! or whose snapshot the object store refuses, is logged and asked again soon (backing off up
//! to one interval).

use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::clients::mikrotik::MikrotikClient;
use crate::configuration::MikrotikSettings;
use crate::inventory::hosts::{self, Sighting};
use crate::inventory::{snapshots, Inventory};
use crate::stores::objects::ObjectStore;

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

    /// Polls every interval until `shutdown`. A router that fails is asked again soon (backing
    /// off up to the interval), so one that was not up yet — the simulator's, a router
    /// rebooting — fills the inventory at once when it answers, not an interval later. A
    /// failing router is logged on the first failure and when it recovers, not on every poll.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut backoff = crate::retry::Backoff::new();
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            match self.poll_once().await {
                Ok(summary) => {
                    if !backoff.is_first() {
                        tracing::info!(router = %self.router, "the router answers again");
                    }
                    backoff.reset();
                    tracing::debug!(router = %self.router, leases = summary.leases,
                        stations = ?summary.stations, "router polled");
                    // On the interval's cadence, however long the poll took.
                    next = (next + self.interval).max(tokio::time::Instant::now());
                }
                Err(e) => {
                    if backoff.is_first() {
                        tracing::warn!(error = %e, router = %self.router, "cannot poll the router; retrying");
                    }
                    next = tokio::time::Instant::now() + backoff.next_delay().min(self.interval);
                }
            }
        }
    }
}
