//! What the models join besides the lake: the registry's devices (type, location, and from their
//! metadata owner, manufacturer, model, installation date and MAC), the device metadata file,
//! and per device and day the alerts and quarantined records PostgreSQL keeps.

use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use sqlx::PgPool;

use crate::domain::Mac;
use crate::inventory::Metadata;

/// A registered device as the models see it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RegisteredDevice {
    pub device_id: String,
    pub device_type: Option<String>,
    pub location: Option<String>,
    pub owner: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    #[sqlx(skip)]
    pub installed_on: Option<NaiveDate>,
    pub installed: Option<String>,
    pub mac: Option<String>,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AlertsOfDay {
    pub device_id: String,
    pub date: NaiveDate,
    pub alerts: i64,
    pub sequence_gaps: i64,
    pub offline_events: i64,
}

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct QuarantineOfDay {
    pub device_id: String,
    pub date: NaiveDate,
    pub quarantined: i64,
}

pub struct Inputs {
    pub devices: Vec<RegisteredDevice>,
    pub metadata: Arc<Metadata>,
    pub alerts: Vec<AlertsOfDay>,
    pub quarantine: Vec<QuarantineOfDay>,
}

/// An installation date as people write it in device metadata: `2024-03-01`, or a time on it.
fn installation_date(text: &str) -> Option<NaiveDate> {
    let text = text.trim();
    NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()
}

/// The devices, and the alerts and quarantined records of the days `[from, to)`.
pub async fn load(
    pool: &PgPool,
    metadata: Arc<Metadata>,
    (from, to): (NaiveDate, NaiveDate),
) -> Result<Inputs, sqlx::Error> {
    let mut devices: Vec<RegisteredDevice> = sqlx::query_as(
        "SELECT device_id, device_type, location, \
                metadata->>'owner' AS owner, metadata->>'manufacturer' AS manufacturer, \
                metadata->>'model' AS model, \
                coalesce(metadata->>'installed_on', metadata->>'installation_date') AS installed, \
                metadata->>'mac' AS mac \
         FROM devices",
    )
    .fetch_all(pool)
    .await?;
    for d in &mut devices {
        d.installed_on = d.installed.as_deref().and_then(installation_date);
        d.mac = d.mac.as_deref().and_then(Mac::parse).map(|m| m.to_string());
    }
    let (from, to): (NaiveDateTime, NaiveDateTime) = (
        from.and_hms_opt(0, 0, 0).unwrap_or_default(),
        to.and_hms_opt(0, 0, 0).unwrap_or_default(),
    );
    let alerts = sqlx::query_as(
        "SELECT device_id, (created_at AT TIME ZONE 'UTC')::date AS date, count(*) AS alerts, \
                count(*) FILTER (WHERE alert_type = 'sequence_gap') AS sequence_gaps, \
                count(*) FILTER (WHERE alert_type = 'offline') AS offline_events \
         FROM alerts \
         WHERE device_id IS NOT NULL \
           AND created_at >= $1 AT TIME ZONE 'UTC' AND created_at < $2 AT TIME ZONE 'UTC' \
         GROUP BY 1, 2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let quarantine = sqlx::query_as(
        "SELECT device_id, (received_at AT TIME ZONE 'UTC')::date AS date, count(*) AS quarantined \
         FROM quarantine \
         WHERE device_id IS NOT NULL \
           AND received_at >= $1 AT TIME ZONE 'UTC' AND received_at < $2 AT TIME ZONE 'UTC' \
         GROUP BY 1, 2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    Ok(Inputs {
        devices,
        metadata,
        alerts,
        quarantine,
    })
}

/// A fingerprint of the alerts and quarantined records of one day: a gold day is built again
/// when it changes.
pub async fn day_signals(pool: &PgPool, day: NaiveDate) -> Result<String, sqlx::Error> {
    let from = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    let to = from + chrono::Days::new(1);
    let (alerts, last_alert, quarantined, last_quarantined): (i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM alerts WHERE device_id IS NOT NULL \
                       AND created_at >= $1 AT TIME ZONE 'UTC' AND created_at < $2 AT TIME ZONE 'UTC'), \
                    (SELECT coalesce(max(id), 0) FROM alerts WHERE device_id IS NOT NULL \
                       AND created_at >= $1 AT TIME ZONE 'UTC' AND created_at < $2 AT TIME ZONE 'UTC'), \
                    (SELECT count(*) FROM quarantine \
                       WHERE received_at >= $1 AT TIME ZONE 'UTC' AND received_at < $2 AT TIME ZONE 'UTC'), \
                    (SELECT coalesce(max(id), 0) FROM quarantine \
                       WHERE received_at >= $1 AT TIME ZONE 'UTC' AND received_at < $2 AT TIME ZONE 'UTC')",
        )
        .bind(from)
        .bind(to)
        .fetch_one(pool)
        .await?;
    Ok(format!(
        "{alerts}:{last_alert}:{quarantined}:{last_quarantined}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installation_dates_are_read_from_dates_and_times() {
        let day = NaiveDate::from_ymd_opt(2024, 3, 1);
        assert_eq!(installation_date("2024-03-01"), day);
        assert_eq!(installation_date(" 2024-03-01T10:00:00Z"), day);
        assert_eq!(installation_date("March"), None);
        assert_eq!(installation_date("2024-13-01"), None);
    }
}
