//! The command outbox: a command is stored first (`queued`), then published to
//! `iot/{device_id}/command` and marked `sent`. While the broker is down commands wait in the
//! registry, and a supervised task sends them once it is back.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::command_payload;
use crate::registry::commands::{self, Queued};
use crate::stores::broker::Publisher;

#[derive(Clone)]
pub struct Outbox {
    pool: PgPool,
    publisher: Publisher,
    iot_prefix: String,
}

impl Outbox {
    pub fn new(pool: PgPool, publisher: Publisher, iot_prefix: String) -> Self {
        Self {
            pool,
            publisher,
            iot_prefix,
        }
    }

    /// Publishes a stored command and marks it sent; `false` when the broker is not connected
    /// (it stays queued).
    pub async fn send(&self, command: &Queued) -> Result<bool, sqlx::Error> {
        if !self.publisher.is_connected() {
            return Ok(false);
        }
        let topic = format!("{}/{}/command", self.iot_prefix, command.device_id);
        let payload = command_payload(command.cmd_id, &command.cmd, &command.params, Utc::now());
        if self.publisher.publish(topic, payload, false).is_err() {
            return Ok(false);
        }
        commands::mark_sent(&self.pool, command.cmd_id).await?;
        Ok(true)
    }

    /// Sends queued commands every 2 s while the broker is connected, until shutdown.
    pub async fn resend_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            if !self.publisher.is_connected() {
                continue;
            }
            let queued = match commands::queued(&self.pool, 500).await {
                Ok(queued) => queued,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read queued commands");
                    continue;
                }
            };
            for command in &queued {
                if let Err(e) = self.send(command).await {
                    tracing::warn!(error = %e, "cannot send a queued command");
                    break;
                }
            }
        }
    }
}
