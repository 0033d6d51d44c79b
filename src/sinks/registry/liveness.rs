//! Liveness: a device silent for 2 × max(send interval, hello interval) goes offline with an
//! alert. Checked every `collector.liveness_check_secs`.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::configuration::CollectorSettings;
use crate::registry;

#[derive(Clone)]
pub struct Liveness {
    pool: PgPool,
    every: Duration,
    send_interval_secs: u64,
    hello_interval_secs: u64,
}

impl Liveness {
    pub fn new(pool: PgPool, settings: &CollectorSettings) -> Self {
        Self {
            pool,
            every: Duration::from_secs(settings.liveness_check_secs.max(1)),
            send_interval_secs: settings.send_interval_secs,
            hello_interval_secs: settings.hello_interval_secs,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(self.every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            let offline = registry::devices::mark_silent_offline(
                &self.pool,
                self.send_interval_secs,
                self.hello_interval_secs,
            )
            .await;
            match offline {
                Ok(devices) if !devices.is_empty() => {
                    tracing::info!(count = devices.len(), "devices went offline")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "liveness check failed"),
            }
        }
    }
}
