//! The command outbox: a command is stored first (`queued`), then published to
//! `iot/{device_id}/command` and marked `sent`. While the broker is down commands wait in the
//! registry, and a supervised task sends them once it is back.
//!
//! `switch_set` to a Shelly the pollers poll (its registry metadata has `http`) goes to the
//! device itself, as the HTTP RPC `Switch.Set`, and its answer is the command's status
//! (`accepted`, or `error` with the reason).

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::domain::command::switch_set;
use crate::domain::{command_payload, CommandName};
use crate::registry::commands::{self, Queued};
use crate::sources::shelly::ShellyClient;
use crate::stores::broker::Publisher;

#[derive(Clone)]
pub struct Outbox {
    pool: PgPool,
    publisher: Publisher,
    iot_prefix: String,
    /// Shelly devices' HTTP RPC, with `shelly.password` when set.
    shelly: ShellyClient,
}

impl Outbox {
    pub fn new(
        pool: PgPool,
        publisher: Publisher,
        iot_prefix: String,
        shelly: ShellyClient,
    ) -> Self {
        Self {
            pool,
            publisher,
            iot_prefix,
            shelly,
        }
    }

    /// Publishes a stored command and marks it sent; `false` when the broker is not connected
    /// (it stays queued).
    pub async fn send(&self, command: &Queued) -> Result<bool, sqlx::Error> {
        if command.cmd == CommandName::SwitchSet.as_str() {
            if let Some(host) = shelly_http(&self.pool, &command.device_id).await? {
                self.switch_over_http(command, &host).await?;
                return Ok(true);
            }
        }
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

    /// `Switch.Set` over the Shelly's HTTP RPC; its answer (or the failure) is the status.
    async fn switch_over_http(&self, command: &Queued, host: &str) -> Result<(), sqlx::Error> {
        let (result, detail) = match switch_set(&command.params) {
            Err(e) => ("rejected", e.message),
            Ok(set) => {
                let mut path = format!("/rpc/Switch.Set?id={}&on={}", set.channel, set.on);
                if let Some(after) = set.toggle_after {
                    path.push_str(&format!("&toggle_after={after}"));
                }
                let shelly = self.shelly.host(host);
                match shelly.send(reqwest::Method::GET, &path, None).await {
                    Ok(r) if r.status().is_success() => {
                        let answer = r.text().await.unwrap_or_default();
                        (
                            "accepted",
                            format!(
                                "Switch.Set: {}",
                                answer.chars().take(200).collect::<String>()
                            ),
                        )
                    }
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let answer = r.text().await.unwrap_or_default();
                        (
                            "error",
                            format!(
                                "Switch.Set answered {status}: {}",
                                answer.chars().take(200).collect::<String>()
                            ),
                        )
                    }
                    Err(e) => ("error", e.to_string()),
                }
            }
        };
        commands::answer(&self.pool, command.cmd_id, result, &detail).await
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

/// The `host[:port]` of a Shelly the pollers poll, from its registry metadata.
async fn shelly_http(pool: &PgPool, device: &str) -> Result<Option<String>, sqlx::Error> {
    let host: Option<Option<String>> = sqlx::query_scalar(
        "SELECT metadata->>'http' FROM devices WHERE device_id = $1 AND device_type = 'shelly' \
         AND (metadata->>'polled')::boolean IS TRUE",
    )
    .bind(device)
    .fetch_optional(pool)
    .await?;
    Ok(host.flatten())
}
