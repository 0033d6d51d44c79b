//! The last `seq` of every device that sends one (v2), kept by the registry sink.

use sqlx::PgPool;

/// `(device_id, last seq)` of every device with a sequence.
pub async fn last_numbers(pool: &PgPool) -> Result<Vec<(String, u64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT device_id, last_seq FROM device_sequences")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(device, seq)| (device, seq.max(0) as u64))
        .collect())
}

/// `(device_id, last seq)` of those of `devices` with a sequence.
pub async fn last_numbers_of(
    pool: &PgPool,
    devices: &[&str],
) -> Result<Vec<(String, u64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT device_id, last_seq FROM device_sequences WHERE device_id = ANY($1)",
    )
    .bind(devices)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(device, seq)| (device, seq.max(0) as u64))
        .collect())
}

/// The stored last numbers of `devices` (one batch's, repeats allowed), for per-device state that
/// was forgotten in memory: one query, none when `devices` is empty. A failure is logged and
/// gives nothing (the devices count as new).
pub async fn restore(pool: &PgPool, mut devices: Vec<&str>) -> Vec<(String, u64)> {
    if devices.is_empty() {
        return Vec::new();
    }
    devices.sort_unstable();
    devices.dedup();
    last_numbers_of(pool, &devices).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot restore devices' last seq; taking them as new");
        Vec::new()
    })
}
