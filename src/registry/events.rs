use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::{devices, RegistryError};
use crate::domain::{DeviceId, Listing, Page};

/// A stored seed 003 (`qs/v1`) event.
#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct Event {
    pub event_id: String,
    pub device_id: String,
    pub schema: i32,
    pub event_type: String,
    pub value_num: Option<f64>,
    pub value_text: Option<String>,
    pub unit: Option<String>,
    /// When the event happened, by the device's clock.
    pub ts_device: Option<DateTime<Utc>>,
    /// When devicehub stored it.
    pub ts_server: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
}

/// Events of a registered device, newest stored first.
pub async fn list(
    pool: &PgPool,
    id: &DeviceId,
    event_type: Option<&str>,
    page: Page,
) -> Result<Listing<Event>, RegistryError> {
    devices::ensure_exists(pool, id).await?;
    const WHERE: &str = "WHERE device_id = $1 AND ($2::text IS NULL OR event_type = $2)";
    let items = sqlx::query_as::<_, Event>(&format!(
        "SELECT event_id, device_id, schema, event_type, value_num, value_text, unit, \
                ts_device, ts_server, meta \
         FROM events {WHERE} ORDER BY ts_server DESC, event_id LIMIT $3 OFFSET $4"
    ))
    .bind(id.as_str())
    .bind(event_type)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(pool)
    .await?;
    let count_sql = format!("SELECT count(*) FROM events {WHERE}");
    let count = sqlx::query_scalar(&count_sql)
        .bind(id.as_str())
        .bind(event_type)
        .fetch_one(pool);
    let total = super::total_of(items.len(), page, count).await?;
    Ok(Listing { items, total })
}
