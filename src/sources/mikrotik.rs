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
