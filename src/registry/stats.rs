use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::RegistryError;

#[derive(Debug, Serialize, sqlx::FromRow, ToSchema)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
}

/// The fleet as the registry counts it.
#[derive(Debug)]
pub struct Fleet {
    pub total_devices: i64,
    pub device_by_status: Vec<StatusCount>,
    pub unacknowledged_alerts: i64,
    /// Devices whose connection status is `online`.
    pub online_devices: i64,
    /// Stored `qs/v1` events.
    pub total_events: i64,
}

pub async fn read(pool: &PgPool) -> Result<Fleet, RegistryError> {
    let (total_devices, online_devices, unacknowledged_alerts, total_events): (i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM devices), \
                    (SELECT count(*) FROM devices WHERE connection_status = 'online'), \
                    (SELECT count(*) FROM alerts WHERE NOT acknowledged), \
                    (SELECT count(*) FROM events)",
        )
        .fetch_one(pool)
        .await?;
    let device_by_status = sqlx::query_as::<_, StatusCount>(
        "SELECT status, count(*) AS count FROM devices GROUP BY status ORDER BY status",
    )
    .fetch_all(pool)
    .await?;
    Ok(Fleet {
        total_devices,
        device_by_status,
        unacknowledged_alerts,
        online_devices,
        total_events,
    })
}

/// Devices by connection status and unacknowledged alerts by severity, for `GET /metrics`.
#[derive(Debug, Default)]
pub struct Breakdown {
    pub by_connection: Vec<(String, i64)>,
    pub open_by_severity: Vec<(String, i64)>,
}

pub async fn breakdown(pool: &PgPool) -> Result<Breakdown, RegistryError> {
    let rows: Vec<(bool, String, i64)> = sqlx::query_as(
        "SELECT true, connection_status, count(*) FROM devices GROUP BY connection_status \
         UNION ALL \
         SELECT false, severity, count(*) FROM alerts WHERE NOT acknowledged GROUP BY severity",
    )
    .fetch_all(pool)
    .await?;
    let mut breakdown = Breakdown::default();
    for (device, key, count) in rows {
        if device {
            breakdown.by_connection.push((key, count));
        } else {
            breakdown.open_by_severity.push((key, count));
        }
    }
    Ok(breakdown)
}
