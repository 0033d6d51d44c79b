//! Records a sink could never write, kept with the reason (see the `quarantine` migration).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::RegistryError;
use crate::domain::{Listing, Page};

/// A record to quarantine.
#[derive(Debug)]
pub struct NewQuarantined<'a> {
    pub journal_id: &'a str,
    pub journal_no: u64,
    pub sink: &'a str,
    pub device_id: Option<&'a str>,
    pub topic: &'a str,
    pub payload: &'a [u8],
    pub received_at: DateTime<Utc>,
    pub reason: &'a str,
}

/// A quarantined record as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Quarantined {
    pub id: i64,
    /// The sink that refused it: `influxdb`, `archive` or `registry`.
    pub sink: String,
    /// Its position in the collector's journal.
    pub journal_no: i64,
    pub device_id: Option<String>,
    pub topic: String,
    /// The payload as received (as UTF-8, invalid sequences replaced).
    pub payload: String,
    pub payload_bytes: usize,
    pub received_at: DateTime<Utc>,
    /// Why the store refused it.
    pub reason: String,
    pub created_at: DateTime<Utc>,
}

/// Quarantine filters.
#[derive(Debug, Clone)]
pub struct QuarantineFilter {
    pub sink: Option<String>,
    pub device_id: Option<String>,
    pub page: Page,
}

/// Keeps the record and, the first time, raises a `sink_rejected` alert on its device. Returns
/// whether it was new.
pub async fn add(pool: &PgPool, record: &NewQuarantined<'_>) -> Result<bool, sqlx::Error> {
    // What a store said may hold anything; PostgreSQL's text takes no NUL.
    let printable = |s: &str, max: usize| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(max)
            .collect()
    };
    let (topic, reason) = (
        printable(record.topic, 1024),
        printable(record.reason, 2000),
    );
    let mut tx = pool.begin().await?;
    let new: Option<i64> = sqlx::query_scalar(
        "INSERT INTO quarantine (journal_id, journal_no, sink, device_id, topic, payload, received_at, reason) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (journal_id, sink, journal_no) DO NOTHING RETURNING id",
    )
    .bind(record.journal_id)
    .bind(record.journal_no as i64)
    .bind(record.sink)
    .bind(record.device_id)
    .bind(&topic)
    .bind(record.payload)
    .bind(record.received_at)
    .bind(&reason)
    .fetch_optional(&mut *tx)
    .await?;
    if let (Some(id), Some(device)) = (new, record.device_id) {
        // Ingest only takes a device the registry knows or is to register (mqtt.unknown_devices):
        // the quarantine may come first, and registers it as the registry sink would.
        sqlx::query(
            "INSERT INTO devices (device_id, device_name, status) VALUES ($1, $1, 'unregistered') \
             ON CONFLICT (device_id) DO NOTHING",
        )
        .bind(device)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO alerts (device_id, alert_type, severity, message) \
             VALUES ($1, 'sink_rejected', 'error', $2)",
        )
        .bind(device)
        .bind(format!(
            "the {} sink cannot write a message of this device (quarantine id {id}): {}",
            record.sink, reason
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(new.is_some())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    sink: String,
    journal_no: i64,
    device_id: Option<String>,
    topic: String,
    payload: Vec<u8>,
    received_at: DateTime<Utc>,
    reason: String,
    created_at: DateTime<Utc>,
}

impl From<Row> for Quarantined {
    fn from(row: Row) -> Self {
        Self {
            id: row.id,
            sink: row.sink,
            journal_no: row.journal_no,
            device_id: row.device_id,
            topic: row.topic,
            payload_bytes: row.payload.len(),
            payload: String::from_utf8_lossy(&row.payload).into_owned(),
            received_at: row.received_at,
            reason: row.reason,
            created_at: row.created_at,
        }
    }
}

const COLUMNS: &str =
    "id, sink, journal_no, device_id, topic, payload, received_at, reason, created_at";

/// Quarantined records, newest first.
pub async fn list(
    pool: &PgPool,
    filter: &QuarantineFilter,
) -> Result<Listing<Quarantined>, RegistryError> {
    const WHERE: &str =
        "WHERE ($1::text IS NULL OR sink = $1) AND ($2::text IS NULL OR device_id = $2)";
    let rows = sqlx::query_as::<_, Row>(&format!(
        "SELECT {COLUMNS} FROM quarantine {WHERE} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(filter.sink.as_deref())
    .bind(filter.device_id.as_deref())
    .bind(filter.page.limit)
    .bind(filter.page.offset)
    .fetch_all(pool)
    .await?;
    let count_sql = format!("SELECT count(*) FROM quarantine {WHERE}");
    let count = sqlx::query_scalar(&count_sql)
        .bind(filter.sink.as_deref())
        .bind(filter.device_id.as_deref())
        .fetch_one(pool);
    let total = super::total_of(rows.len(), filter.page, count).await?;
    Ok(Listing {
        items: rows.into_iter().map(Quarantined::from).collect(),
        total,
    })
}

pub async fn find(pool: &PgPool, id: i64) -> Result<Quarantined, RegistryError> {
    sqlx::query_as::<_, Row>(&format!("SELECT {COLUMNS} FROM quarantine WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(Quarantined::from)
        .ok_or_else(|| RegistryError::not_found("quarantined record", id))
}
