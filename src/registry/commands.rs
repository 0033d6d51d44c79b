//! Commands sent to devices and their answers.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{devices, missing_device, RegistryError};
use crate::domain::{CommandRequest, DeviceId, Listing, Page};

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Command {
    pub cmd_id: Uuid,
    pub device_id: String,
    pub cmd: String,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// `queued` (broker down), `sent`, then the device's answer: `accepted`, `rejected`, `error`,
    /// `unsupported`.
    pub status: String,
    pub detail: Option<String>,
    pub ota_state: Option<String>,
    pub ota_progress: Option<i16>,
    pub requested_by: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub acked_at: Option<DateTime<Utc>>,
}

/// A stored command still to send.
#[derive(Debug, sqlx::FromRow)]
pub struct Queued {
    pub cmd_id: Uuid,
    pub device_id: String,
    pub cmd: String,
    pub params: serde_json::Value,
}

const COLUMNS: &str = "cmd_id, device_id, cmd, params, status, detail, ota_state, ota_progress, requested_by, created_at, sent_at, acked_at";

/// Records a device's answer that did not come over MQTT (a Shelly's HTTP RPC answer).
pub async fn answer(
    pool: &PgPool,
    cmd_id: Uuid,
    result: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE commands SET status = $2, detail = $3, sent_at = COALESCE(sent_at, now()), \
         acked_at = now() WHERE cmd_id = $1",
    )
    .bind(cmd_id)
    .bind(result)
    .bind(detail)
    .execute(pool)
    .await?;
    Ok(())
}

/// Stores a new command as `queued`; not found when the device is not registered.
pub async fn create(
    pool: &PgPool,
    device: &DeviceId,
    request: &CommandRequest,
    requested_by: &str,
) -> Result<Queued, RegistryError> {
    let cmd_id = Uuid::new_v4();
    sqlx::query("INSERT INTO commands (cmd_id, device_id, cmd, params, requested_by) VALUES ($1, $2, $3, $4, $5)")
        .bind(cmd_id)
        .bind(device.as_str())
        .bind(request.cmd.as_str())
        .bind(&request.params)
        .bind(requested_by)
        .execute(pool)
        .await
        .map_err(missing_device(device.as_str()))?;
    Ok(Queued {
        cmd_id,
        device_id: device.as_str().to_owned(),
        cmd: request.cmd.as_str().to_owned(),
        params: request.params.clone(),
    })
}

/// Marks a queued command sent.
pub async fn mark_sent(pool: &PgPool, cmd_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE commands SET status = 'sent', sent_at = now() WHERE cmd_id = $1 AND status = 'queued'")
        .bind(cmd_id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn find(pool: &PgPool, cmd_id: Uuid) -> Result<Command, RegistryError> {
    sqlx::query_as::<_, Command>(&format!("SELECT {COLUMNS} FROM commands WHERE cmd_id = $1"))
        .bind(cmd_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::not_found("command", cmd_id))
}

/// Commands of a registered device, newest first.
pub async fn list(
    pool: &PgPool,
    device: &DeviceId,
    page: Page,
) -> Result<Listing<Command>, RegistryError> {
    devices::ensure_exists(pool, device).await?;
    let items = sqlx::query_as::<_, Command>(&format!(
        "SELECT {COLUMNS} FROM commands WHERE device_id = $1 ORDER BY created_at DESC LIMIT $2 OFFSET $3"
    ))
    .bind(device.as_str())
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    let count = sqlx::query_scalar("SELECT count(*) FROM commands WHERE device_id = $1")
        .bind(device.as_str())
        .fetch_one(pool);
    let total = super::total_of(items.len(), page, count).await?;
    Ok(Listing { items, total })
}

/// The oldest commands still queued, up to `limit`.
pub async fn queued(pool: &PgPool, limit: i64) -> Result<Vec<Queued>, sqlx::Error> {
    sqlx::query_as(
        "SELECT cmd_id, device_id, cmd, params FROM commands WHERE status = 'queued' ORDER BY created_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
}
