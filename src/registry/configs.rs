use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::{devices, missing_device, RegistryError};
use crate::domain::{ConfigKey, DeviceId};

/// One configuration key/value pair of a device.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct ConfigEntry {
    pub device_id: String,
    pub key: String,
    /// Any JSON value.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

pub async fn list(pool: &PgPool, id: &DeviceId) -> Result<Vec<ConfigEntry>, RegistryError> {
    devices::ensure_exists(pool, id).await?;
    Ok(sqlx::query_as::<_, ConfigEntry>(
        "SELECT device_id, config_key AS key, config_value AS value, updated_at \
         FROM device_configs WHERE device_id = $1 ORDER BY config_key",
    )
    .bind(id.as_str())
    .fetch_all(pool)
    .await?)
}

pub async fn set(
    pool: &PgPool,
    id: &DeviceId,
    key: &ConfigKey,
    value: serde_json::Value,
) -> Result<ConfigEntry, RegistryError> {
    sqlx::query_as::<_, ConfigEntry>(
        "INSERT INTO device_configs (device_id, config_key, config_value) VALUES ($1, $2, $3) \
         ON CONFLICT (device_id, config_key) \
         DO UPDATE SET config_value = EXCLUDED.config_value, updated_at = now() \
         RETURNING device_id, config_key AS key, config_value AS value, updated_at",
    )
    .bind(id.as_str())
    .bind(key.as_str())
    .bind(value)
    .fetch_one(pool)
    .await
    .map_err(missing_device(id.as_str()))
}

pub async fn delete(pool: &PgPool, id: &DeviceId, key: &ConfigKey) -> Result<(), RegistryError> {
    let deleted =
        sqlx::query("DELETE FROM device_configs WHERE device_id = $1 AND config_key = $2")
            .bind(id.as_str())
            .bind(key.as_str())
            .execute(pool)
            .await?
            .rows_affected();
    if deleted == 0 {
        devices::ensure_exists(pool, id).await?;
        return Err(RegistryError::NotFound {
            what: "config key",
            details: serde_json::json!({"device_id": id.as_str(), "key": key.as_str()}),
        });
    }
    Ok(())
}
