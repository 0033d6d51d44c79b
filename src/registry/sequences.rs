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
