//! The command outbox: a command is stored first (`queued`), then published to
//! `iot/{device_id}/command` and marked `sent`. While the broker is down commands wait in the
//! registry, and a supervised task sends them once it is back.
//!
//! `switch_set` to a Shelly the pollers poll (its registry metadata has `http` and `polled`) goes
//! to the device itself, as the HTTP RPC `Switch.Set` (Gen1: `/relay/N`), and its answer is the
//! command's status (`accepted`, or `error` with the reason). To a Shelly that pushes over MQTT
//! it goes as JSON-RPC on `{id}/rpc`; the device's answer on `{id}/devicehub/rpc` sets the status.
//!
//! A device's HTTP answer is read only so far as the status keeps it (4 KiB) and stored with its
//! control characters replaced, so no answer can wedge the outbox: a command always ends with a
//! status, and the commands behind it flow.

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::clients::shelly::ShellyClient;
use crate::domain::command::switch_set;
use crate::domain::{command_payload, CommandName};
use crate::registry::commands::{self, Queued};
use crate::stores::broker::Publisher;
use crate::wire::SHELLY_RPC_SOURCE;

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
            match shelly_route(&self.pool, &command.device_id).await? {
                Some(ShellyRoute::Http { host, generation }) => {
                    self.switch_over_http(command, &host, generation).await?;
                    return Ok(true);
                }
                Some(ShellyRoute::Mqtt) => return self.switch_over_mqtt(command).await,
                None => {}
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

    /// `Switch.Set` as JSON-RPC on the Shelly's MQTT RPC topic `{id}/rpc`, answered on
    /// `{id}/devicehub/rpc` (the collector turns the answer into the command's status).
    async fn switch_over_mqtt(&self, command: &Queued) -> Result<bool, sqlx::Error> {
        let set = match switch_set(&command.params) {
            Ok(set) => set,
            Err(e) => {
                commands::answer(&self.pool, command.cmd_id, "rejected", &e.message).await?;
                return Ok(true);
            }
        };
        if !self.publisher.is_connected() {
            return Ok(false);
        }
        let mut params = serde_json::json!({"id": set.channel, "on": set.on});
        if let Some(after) = set.toggle_after {
            params["toggle_after"] = serde_json::json!(after);
        }
        let request = serde_json::json!({
            "id": command.cmd_id.to_string(),
            "src": format!("{}/{SHELLY_RPC_SOURCE}", command.device_id),
            "method": "Switch.Set",
            "params": params,
        });
        let topic = format!("{}/rpc", command.device_id);
        if self
            .publisher
            .publish(topic, request.to_string().into_bytes(), false)
            .is_err()
        {
            return Ok(false);
        }
        commands::mark_sent(&self.pool, command.cmd_id).await?;
        Ok(true)
    }

    /// `Switch.Set` over the Shelly's HTTP RPC (Gen1: `/relay/N?turn=`); its answer (or the
    /// failure) is the status.
    async fn switch_over_http(
        &self,
        command: &Queued,
        host: &str,
        generation: u8,
    ) -> Result<(), sqlx::Error> {
        let (result, detail) = match switch_set(&command.params) {
            Err(e) => ("rejected", e.message),
            Ok(set) => {
                let path = if generation == 1 {
                    let turn = if set.on { "on" } else { "off" };
                    let timer = set
                        .toggle_after
                        .map(|after| format!("&timer={after}"))
                        .unwrap_or_default();
                    format!("/relay/{}?turn={turn}{timer}", set.channel)
                } else {
                    let toggle = set
                        .toggle_after
                        .map(|after| format!("&toggle_after={after}"))
                        .unwrap_or_default();
                    format!("/rpc/Switch.Set?id={}&on={}{toggle}", set.channel, set.on)
                };
                // Basic auth only if the operator listed the host in shelly.gen1_hosts.
                let shelly = self.shelly.host(host);
                match shelly.send(reqwest::Method::GET, &path, None).await {
                    Ok(r) if r.status().is_success() => {
                        let answer = answer_text(r).await;
                        ("accepted", format!("{}: {answer}", rpc_name(&path)))
                    }
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let answer = answer_text(r).await;
                        let detail = format!("{} answered {status}: {answer}", rpc_name(&path));
                        ("error", detail)
                    }
                    Err(e) => ("error", printable(&e.to_string())),
                }
            }
        };
        match commands::answer(&self.pool, command.cmd_id, result, &detail).await {
            // PostgreSQL refused the text itself (a data exception): the command fails with the
            // reason instead of staying queued, to be resent, and refused, forever.
            Err(sqlx::Error::Database(e)) if e.code().is_some_and(|c| c.starts_with("22")) => {
                let reason = format!("the device's answer could not be stored: {e}");
                commands::answer(&self.pool, command.cmd_id, "error", &printable(&reason)).await
            }
            stored => stored,
        }
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

/// The most of a device's answer kept in a command's detail, in characters.
const ANSWER_CHARS: usize = 200;
/// The most of a device's answer read, whatever it sends (the detail keeps less).
const ANSWER_BYTES: usize = 4096;

/// The start of a device's answer as a command's detail can hold it: at most [`ANSWER_BYTES`]
/// read, control characters replaced (NUL, which PostgreSQL cannot store, included).
async fn answer_text(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(ANSWER_BYTES);
    printable(&String::from_utf8_lossy(&bytes))
}

/// `text` with control characters but tab and line feed replaced by U+FFFD, at most
/// [`ANSWER_CHARS`] of it (a device's MQTT answer with control characters is dead-lettered
/// instead; over HTTP the command's status is all there is to keep).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' => c,
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .take(ANSWER_CHARS)
        .collect()
}

/// The RPC a path calls, without its parameters.
fn rpc_name(path: &str) -> &str {
    path.split('?').next().unwrap_or_default()
}

/// How a Shelly is reached.
enum ShellyRoute {
    /// Polled by the pollers: its HTTP API.
    Http { host: String, generation: u8 },
    /// A push device: its MQTT RPC topic.
    Mqtt,
}

/// How to reach the device, from its registry row: `None` when it is not a Shelly (of type
/// `shelly`, or registered bare from its MQTT status with a Shelly id, `shelly...`).
async fn shelly_route(pool: &PgPool, device: &str) -> Result<Option<ShellyRoute>, sqlx::Error> {
    let found: Option<(Option<String>, bool, Option<i32>)> = sqlx::query_as(
        "SELECT metadata->>'http', COALESCE(jsonb_typeof(metadata->'polled') = 'boolean' \
                AND (metadata->>'polled')::boolean, false), \
                CASE WHEN jsonb_typeof(metadata->'generation') = 'number' \
                THEN (metadata->>'generation')::float8::int END \
         FROM devices WHERE device_id = $1 \
           AND (device_type = 'shelly' OR (device_type IS NULL AND device_id LIKE 'shelly%'))",
    )
    .bind(device)
    .fetch_optional(pool)
    .await?;
    Ok(found.map(|(host, polled, generation)| match host {
        Some(host) if polled => ShellyRoute::Http {
            host,
            generation: generation.map_or(2, |g| g.clamp(1, 9) as u8),
        },
        _ => ShellyRoute::Mqtt,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_keeps_its_text_without_control_characters_and_within_bounds() {
        assert_eq!(printable("ok\0\u{7}\tdone\n"), "ok\u{fffd}\u{fffd}\tdone\n");
        assert_eq!(printable(&"é".repeat(500)).chars().count(), ANSWER_CHARS);
        assert_eq!(rpc_name("/rpc/Switch.Set?id=0&on=true"), "/rpc/Switch.Set");
    }
}
