use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::{devices, missing_device, RegistryError};
use crate::domain::{DeviceId, Listing, NewAlert, Page, Severity};

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Alert {
    pub id: i64,
    /// The device, or `null` for an alert about devicehub itself (its journal, its sinks).
    pub device_id: Option<String>,
    pub alert_type: String,
    pub severity: Severity,
    pub message: String,
    pub acknowledged: bool,
    /// Who acknowledged it, once acknowledged.
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Parsed alert listing filter.
#[derive(Debug, Clone, Copy)]
pub struct AlertFilter {
    pub acknowledged: Option<bool>,
    pub severity: Option<Severity>,
    pub page: Page,
}

const COLUMNS: &str = "id, device_id, alert_type, severity, message, acknowledged, \
    acknowledged_by, acknowledged_at, created_at";

pub async fn raise(pool: &PgPool, id: &DeviceId, alert: NewAlert) -> Result<Alert, RegistryError> {
    let sql = format!(
        "INSERT INTO alerts (device_id, alert_type, severity, message) VALUES ($1, $2, $3, $4) \
         RETURNING {COLUMNS}"
    );
    sqlx::query_as::<_, Alert>(&sql)
        .bind(id.as_str())
        .bind(alert.alert_type)
        .bind(alert.severity)
        .bind(alert.message)
        .fetch_one(pool)
        .await
        .map_err(missing_device(id.as_str()))
}

/// Raises an alert on device `id` if it exists; `false` when it does not.
pub async fn raise_on_device_if_exists(
    pool: &PgPool,
    id: &DeviceId,
    (alert_type, severity): (&str, Severity),
    message: &str,
) -> Result<bool, sqlx::Error> {
    let raised = sqlx::query(
        "INSERT INTO alerts (device_id, alert_type, severity, message) \
         SELECT device_id, $2, $3, $4 FROM devices WHERE device_id = $1",
    )
    .bind(id.as_str())
    .bind(alert_type)
    .bind(severity)
    .bind(message)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(raised > 0)
}

/// Raises an alert about devicehub itself (no device).
pub async fn raise_service(
    pool: &PgPool,
    alert_type: &str,
    severity: Severity,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alerts (device_id, alert_type, severity, message) VALUES (NULL, $1, $2, $3)",
    )
    .bind(alert_type)
    .bind(severity)
    .bind(message)
    .execute(pool)
    .await?;
    Ok(())
}

/// Alerts of one device (`Some`) or of all devices (`None`), newest first.
pub async fn list(
    pool: &PgPool,
    device: Option<&DeviceId>,
    filter: AlertFilter,
) -> Result<Listing<Alert>, RegistryError> {
    if let Some(id) = device {
        devices::ensure_exists(pool, id).await?;
    }
    const WHERE: &str = "WHERE ($1::text IS NULL OR device_id = $1) \
           AND ($2::bool IS NULL OR acknowledged = $2) \
           AND ($3::text IS NULL OR severity = $3)";
    let sql = format!(
        "SELECT {COLUMNS} FROM alerts {WHERE} ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
    );
    let items = sqlx::query_as::<_, Alert>(&sql)
        .bind(device.map(DeviceId::as_str))
        .bind(filter.acknowledged)
        .bind(filter.severity)
        .bind(filter.page.limit)
        .bind(filter.page.offset)
        .fetch_all(pool)
        .await?;
    let count_sql = format!("SELECT count(*) FROM alerts {WHERE}");
    let count = sqlx::query_scalar(&count_sql)
        .bind(device.map(DeviceId::as_str))
        .bind(filter.acknowledged)
        .bind(filter.severity)
        .fetch_one(pool);
    let total = super::total_of(items.len(), filter.page, count).await?;
    Ok(Listing { items, total })
}

/// Marks the alert acknowledged by `who`; acknowledging again keeps the first acknowledgement.
pub async fn acknowledge(pool: &PgPool, alert_id: i64, who: &str) -> Result<Alert, RegistryError> {
    let sql = format!(
        "UPDATE alerts SET acknowledged = true, \
           acknowledged_by = COALESCE(acknowledged_by, $2), \
           acknowledged_at = COALESCE(acknowledged_at, now()) \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    sqlx::query_as::<_, Alert>(&sql)
        .bind(alert_id)
        .bind(who)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::not_found("alert", alert_id))
}

pub async fn find(pool: &PgPool, alert_id: i64) -> Result<Alert, RegistryError> {
    sqlx::query_as::<_, Alert>(&format!("SELECT {COLUMNS} FROM alerts WHERE id = $1"))
        .bind(alert_id)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::not_found("alert", alert_id))
}

/// The newest `limit` alerts raised after `after_id` (of `devices` only, when given), oldest
/// first: what a live client missed (beyond `limit`, the oldest of those are left out).
pub async fn after(
    pool: &PgPool,
    after_id: i64,
    devices: Option<&[String]>,
    limit: i64,
) -> Result<Vec<Alert>, sqlx::Error> {
    sqlx::query_as::<_, Alert>(&format!(
        "SELECT * FROM (SELECT {COLUMNS} FROM alerts WHERE id > $1 \
         AND ($2::text[] IS NULL OR device_id = ANY($2)) ORDER BY id DESC LIMIT $3) newest \
         ORDER BY id"
    ))
    .bind(after_id)
    .bind(devices)
    .bind(limit)
    .fetch_all(pool)
    .await
}
