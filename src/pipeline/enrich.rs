//! Enrichment: the registry's `device_type` of each device, for the InfluxDB tag and the lake
//! column. Refreshed every 30 s, and at once (at most once a second) when a sink meets a device
//! it does not know yet.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::DeviceId;
use crate::journal::Journaled;
use crate::registry;

type DeviceTypeMap = HashMap<String, Option<String>, foldhash::fast::RandomState>;

/// The types as the registry knew them at one moment.
#[derive(Clone, Default)]
pub struct KnownTypes(Arc<DeviceTypeMap>);

impl KnownTypes {
    /// The device's type; `None` when it is unknown or registered without one.
    pub fn of(&self, device: &DeviceId) -> Option<&str> {
        self.0.get(device.as_str()).and_then(|t| t.as_deref())
    }

    fn knows(&self, device: &str) -> bool {
        self.0.contains_key(device)
    }
}

pub struct DeviceTypes {
    pool: PgPool,
    map: RwLock<KnownTypes>,
    last_refresh: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl DeviceTypes {
    const EVERY: Duration = Duration::from_secs(30);

    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            map: Default::default(),
            last_refresh: Default::default(),
        }
    }

    fn snapshot(&self) -> KnownTypes {
        self.map.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// The types of the devices of `records`, as far as the registry knows them.
    pub async fn of(&self, records: &[Arc<Journaled>]) -> KnownTypes {
        let snapshot = self.snapshot();
        let mut devices = records
            .iter()
            .filter_map(|j| j.message.device_id().map(DeviceId::as_str));
        if devices.all(|d| snapshot.knows(d)) {
            return snapshot;
        }
        let mut last = self.last_refresh.lock().await;
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(tokio::time::Instant::now());
            self.refresh().await;
        }
        self.snapshot()
    }

    async fn refresh(&self) {
        let query = registry::devices::types(&self.pool);
        match tokio::time::timeout(Duration::from_secs(1), query).await {
            Ok(Ok(rows)) => {
                if let Ok(mut map) = self.map.write() {
                    *map = KnownTypes(Arc::new(rows.into_iter().collect()));
                }
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot read device types"),
            Err(_) => tracing::debug!("reading device types timed out"),
        }
    }

    /// Refreshes every 30 s until shutdown (changed types reach the sinks within that).
    pub async fn refresh_until(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(Self::EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => self.refresh().await,
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }
}
