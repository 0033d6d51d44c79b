use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::RegistryError;
use crate::domain::{DeviceFilter, DeviceId, DevicePatch, DeviceStatus, Listing, NewDevice};

/// A registered device as the API shows it (seed 004 field names).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Device {
    pub id: i64,
    pub device_id: String,
    pub device_name: String,
    pub device_type: Option<String>,
    pub location: Option<String>,
    pub status: DeviceStatus,
    /// `online`, `offline` or `unknown`, from the device's own traffic.
    pub connection_status: String,
    pub last_seen: Option<DateTime<Utc>>,
    pub fw_version: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /api/devices/{device_id}/status`.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct ConnectionState {
    pub device_id: String,
    /// `online`, `offline` or `unknown`.
    pub connection_status: String,
    pub last_seen: Option<DateTime<Utc>>,
    pub fw_version: Option<String>,
}

const COLUMNS: &str = "id, device_id, device_name, device_type, location, status, \
    connection_status, last_seen, fw_version, metadata, created_at, updated_at";

pub async fn register(
    pool: &PgPool,
    id: &DeviceId,
    new: NewDevice,
) -> Result<Device, RegistryError> {
    let sql = format!(
        "INSERT INTO devices (device_id, device_name, device_type, location, status, metadata) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id) DO NOTHING RETURNING {COLUMNS}"
    );
    sqlx::query_as::<_, Device>(&sql)
        .bind(id.as_str())
        .bind(new.device_name)
        .bind(new.device_type)
        .bind(new.location)
        .bind(new.status.unwrap_or(DeviceStatus::Active))
        .bind(new.metadata.unwrap_or_else(|| serde_json::json!({})))
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::Conflict(format!("device {id} already exists")))
}

pub async fn find(pool: &PgPool, id: &DeviceId) -> Result<Device, RegistryError> {
    let sql = format!("SELECT {COLUMNS} FROM devices WHERE device_id = $1");
    sqlx::query_as::<_, Device>(&sql)
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::not_found("device", id.as_str()))
}

/// Fails with 404 unless the device is registered.
pub async fn ensure_exists(pool: &PgPool, id: &DeviceId) -> Result<(), RegistryError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT id FROM devices WHERE device_id = $1")
        .bind(id.as_str())
        .fetch_optional(pool)
        .await?;
    found
        .map(|_| ())
        .ok_or_else(|| RegistryError::not_found("device", id.as_str()))
}

/// `(device_id, mac)` of the devices whose metadata holds a `mac` (Shelly devices, cameras),
/// as they wrote it.
pub async fn ids_by_mac(pool: &PgPool) -> Result<Vec<(String, String)>, RegistryError> {
    Ok(sqlx::query_as(
        "SELECT device_id, metadata->>'mac' FROM devices WHERE metadata->>'mac' IS NOT NULL",
    )
    .fetch_all(pool)
    .await?)
}

pub async fn list(pool: &PgPool, filter: &DeviceFilter) -> Result<Listing<Device>, RegistryError> {
    const WHERE: &str = "WHERE ($1::text IS NULL OR status = $1) \
        AND ($2::text IS NULL OR device_type = $2) AND ($3::text IS NULL OR location = $3)";
    let sql = format!(
        "SELECT {COLUMNS} FROM devices {WHERE} ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
    );
    let items = sqlx::query_as::<_, Device>(&sql)
        .bind(filter.status)
        .bind(filter.device_type.as_deref())
        .bind(filter.location.as_deref())
        .bind(filter.page.limit)
        .bind(filter.page.offset)
        .fetch_all(pool)
        .await?;
    let count_sql = format!("SELECT count(*) FROM devices {WHERE}");
    let count = sqlx::query_scalar(&count_sql)
        .bind(filter.status)
        .bind(filter.device_type.as_deref())
        .bind(filter.location.as_deref())
        .fetch_one(pool);
    let total = super::total_of(items.len(), filter.page, count).await?;
    Ok(Listing { items, total })
}

pub async fn update(
    pool: &PgPool,
    id: &DeviceId,
    patch: DevicePatch,
) -> Result<Device, RegistryError> {
    let sql = format!(
        "UPDATE devices SET \
           device_name = COALESCE($2, device_name), \
           device_type = COALESCE($3, device_type), \
           location = COALESCE($4, location), \
           status = COALESCE($5, status), \
           metadata = COALESCE($6, metadata), \
           updated_at = now() \
         WHERE device_id = $1 RETURNING {COLUMNS}"
    );
    sqlx::query_as::<_, Device>(&sql)
        .bind(id.as_str())
        .bind(patch.device_name)
        .bind(patch.device_type)
        .bind(patch.location)
        .bind(patch.status)
        .bind(patch.metadata)
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| RegistryError::not_found("device", id.as_str()))
}

/// Deletes the device; its configs, alerts, commands and sequence state go with it.
pub async fn delete(pool: &PgPool, id: &DeviceId) -> Result<(), RegistryError> {
    let deleted = sqlx::query("DELETE FROM devices WHERE device_id = $1")
        .bind(id.as_str())
        .execute(pool)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(RegistryError::not_found("device", id.as_str()));
    }
    Ok(())
}

/// Records that the device is alive now.
pub async fn heartbeat(pool: &PgPool, id: &DeviceId) -> Result<DateTime<Utc>, RegistryError> {
    sqlx::query_scalar(
        "UPDATE devices SET last_seen = now(), connection_status = 'online' \
         WHERE device_id = $1 RETURNING last_seen",
    )
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?
    .flatten()
    .ok_or_else(|| RegistryError::not_found("device", id.as_str()))
}

pub async fn connection_state(
    pool: &PgPool,
    id: &DeviceId,
) -> Result<ConnectionState, RegistryError> {
    sqlx::query_as::<_, ConnectionState>(
        "SELECT device_id, connection_status, last_seen, fw_version FROM devices WHERE device_id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| RegistryError::not_found("device", id.as_str()))
}

/// The ids of every registered device.
pub async fn ids(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT device_id FROM devices")
        .fetch_all(pool)
        .await
}

/// The ids of the devices of one type.
pub async fn ids_of_type(pool: &PgPool, device_type: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT device_id FROM devices WHERE device_type = $1")
        .bind(device_type)
        .fetch_all(pool)
        .await
}

/// Those of `ids` that are registered.
pub async fn existing(pool: &PgPool, ids: &[&str]) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT device_id FROM devices WHERE device_id = ANY($1)")
        .bind(ids)
        .fetch_all(pool)
        .await
}

/// Every device's `device_type` (`None`: registered without one).
pub async fn types(pool: &PgPool) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as("SELECT device_id, NULLIF(device_type, '') FROM devices")
        .fetch_all(pool)
        .await
}

/// Merges `metadata` into a registered device's metadata (its keys win).
pub async fn merge_metadata(
    pool: &PgPool,
    id: &DeviceId,
    metadata: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE devices SET metadata = metadata || $2, updated_at = now() \
         WHERE device_id = $1 AND NOT (metadata @> $2)",
    )
    .bind(id.as_str())
    .bind(metadata)
    .execute(pool)
    .await?;
    Ok(())
}

/// Adds the keys of `metadata` a device's metadata does not have yet (an identity pinned when it
/// is first learnt, never replaced by what a device later says).
pub async fn pin_metadata(
    pool: &PgPool,
    id: &DeviceId,
    metadata: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE devices SET metadata = $2 || metadata, updated_at = now() \
         WHERE device_id = $1 AND NOT (metadata ?& ARRAY(SELECT jsonb_object_keys($2)))",
    )
    .bind(id.as_str())
    .bind(metadata)
    .execute(pool)
    .await?;
    Ok(())
}

/// What a device record pins of a polled device's identity: its type, MAC and generation
/// (`None`: no such device).
pub async fn pinned_identity(
    pool: &PgPool,
    id: &DeviceId,
) -> Result<Option<(Option<String>, Option<String>, Option<i64>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT device_type, metadata->>'mac', \
                CASE WHEN jsonb_typeof(metadata->'generation') = 'number' \
                THEN (metadata->>'generation')::float8::bigint END \
         FROM devices WHERE device_id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(pool)
    .await
}

/// Whether a device is marked as polled (metadata `polled: true`).
pub async fn is_polled(pool: &PgPool, id: &DeviceId) -> Result<bool, sqlx::Error> {
    let polled: Option<bool> = sqlx::query_scalar(
        "SELECT COALESCE(jsonb_typeof(metadata->'polled') = 'boolean' \
                         AND (metadata->>'polled')::boolean, false) \
         FROM devices WHERE device_id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(polled.unwrap_or(false))
}

/// Whether a registered Shelly pushes its status over MQTT: heard from within `recent`, and
/// not marked as polled.
pub async fn pushes_over_mqtt(
    pool: &PgPool,
    id: &DeviceId,
    recent: std::time::Duration,
) -> Result<bool, sqlx::Error> {
    let pushes: Option<Option<bool>> = sqlx::query_scalar(
        "SELECT last_seen > now() - make_interval(secs => $2) \
                AND NOT COALESCE(jsonb_typeof(metadata->'polled') = 'boolean' \
                                 AND (metadata->>'polled')::boolean, false) \
         FROM devices WHERE device_id = $1",
    )
    .bind(id.as_str())
    .bind(recent.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    Ok(pushes.flatten().unwrap_or(false))
}

/// Marks a polled device that stopped answering offline, with an `offline` alert saying why;
/// `false` when it was offline already.
pub async fn mark_unreachable(
    pool: &PgPool,
    id: &DeviceId,
    why: &str,
) -> Result<bool, sqlx::Error> {
    let marked: Option<String> = sqlx::query_scalar(
        "WITH marked AS ( \
           UPDATE devices SET connection_status = 'offline' \
           WHERE device_id = $1 AND connection_status IS DISTINCT FROM 'offline' RETURNING device_id \
         ) INSERT INTO alerts (device_id, alert_type, severity, message) \
           SELECT device_id, 'offline', 'warning', $2 FROM marked RETURNING device_id",
    )
    .bind(id.as_str())
    .bind(why)
    .fetch_optional(pool)
    .await?;
    Ok(marked.is_some())
}

/// Marks devices silent for 2 × max(send interval, hello interval) offline and raises an
/// `offline` alert for each. Per-device configs `send_interval_s` / `hello_interval_s` override
/// the defaults (held to their bounds, should older values be out of them). Returns the devices
/// that went offline.
pub async fn mark_silent_offline(
    pool: &PgPool,
    default_send_secs: u64,
    default_hello_secs: u64,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "WITH limits AS ( \
           SELECT d.device_id, 2 * GREATEST( \
             LEAST(GREATEST(COALESCE((SELECT CASE WHEN jsonb_typeof(c.config_value) = 'number' THEN (c.config_value #>> '{}')::float8 END \
                       FROM device_configs c WHERE c.device_id = d.device_id AND c.config_key = 'send_interval_s'), $1), 1), 86400), \
             LEAST(GREATEST(COALESCE((SELECT CASE WHEN jsonb_typeof(c.config_value) = 'number' THEN (c.config_value #>> '{}')::float8 END \
                       FROM device_configs c WHERE c.device_id = d.device_id AND c.config_key = 'hello_interval_s'), $2), 1), 604800) \
           ) AS secs \
           FROM devices d WHERE d.connection_status = 'online' \
         ), stale AS ( \
           UPDATE devices d SET connection_status = 'offline' FROM limits l \
           WHERE d.device_id = l.device_id AND d.connection_status = 'online' \
             AND (d.last_seen IS NULL OR d.last_seen < now() - make_interval(secs => l.secs)) \
           RETURNING d.device_id, d.last_seen, l.secs \
         ), raised AS ( \
           INSERT INTO alerts (device_id, alert_type, severity, message) \
           SELECT device_id, 'offline', 'warning', \
                  'no message for more than ' || secs::bigint || ' s (last seen ' || COALESCE(last_seen::text, 'never') || ')' \
           FROM stale RETURNING device_id \
         ) SELECT device_id FROM raised",
    )
    .bind(default_send_secs as f64)
    .bind(default_hello_secs as f64)
    .fetch_all(pool)
    .await
}
