//! What the models have read, in PostgreSQL: every bronze file of the lake with the span of
//! device times it holds (`lake_files`), and every built partition with the fingerprint of its
//! inputs (`analytics_builds`). The lake stays the truth; this decides what to read and rebuild.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgPool;

/// A bronze file as the catalog knows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LakeFile {
    pub key: String,
    pub size: i64,
    pub rows: i64,
    pub min_ts: Option<DateTime<Utc>>,
    pub max_ts: Option<DateTime<Utc>>,
}

/// The files of one date partition the catalog has, by key, with their sizes.
pub async fn known(pool: &PgPool, date: NaiveDate) -> Result<HashMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT key, size FROM lake_files WHERE date = $1")
            .bind(date)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Records files of one date partition (new, or rewritten since).
pub async fn record(pool: &PgPool, date: NaiveDate, files: &[LakeFile]) -> Result<(), sqlx::Error> {
    if files.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
    let sizes: Vec<i64> = files.iter().map(|f| f.size).collect();
    let rows: Vec<i64> = files.iter().map(|f| f.rows).collect();
    let min: Vec<Option<DateTime<Utc>>> = files.iter().map(|f| f.min_ts).collect();
    let max: Vec<Option<DateTime<Utc>>> = files.iter().map(|f| f.max_ts).collect();
    sqlx::query(
        "INSERT INTO lake_files (key, date, size, rows, min_ts, max_ts) \
         SELECT k, $2, s, r, lo, hi \
         FROM UNNEST($1::text[], $3::bigint[], $4::bigint[], $5::timestamptz[], $6::timestamptz[]) \
              AS t(k, s, r, lo, hi) \
         ON CONFLICT (key) DO UPDATE SET size = EXCLUDED.size, rows = EXCLUDED.rows, \
             min_ts = EXCLUDED.min_ts, max_ts = EXCLUDED.max_ts, seen_at = now()",
    )
    .bind(&keys)
    .bind(date)
    .bind(&sizes)
    .bind(&rows)
    .bind(&min)
    .bind(&max)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets files no longer in the lake.
pub async fn forget(pool: &PgPool, keys: &[String]) -> Result<(), sqlx::Error> {
    if !keys.is_empty() {
        sqlx::query("DELETE FROM lake_files WHERE key = ANY($1)")
            .bind(keys)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// The files with readings in `[from, to)`, by key. A file's readings are all of its date
/// partition's day, so only those days' files are looked at.
pub async fn overlapping(
    pool: &PgPool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<LakeFile>, sqlx::Error> {
    sqlx::query_as(
        "SELECT key, size, rows, min_ts, max_ts FROM lake_files \
         WHERE date >= $3 AND date <= $4 AND min_ts < $2 AND max_ts >= $1 ORDER BY key",
    )
    .bind(from)
    .bind(to)
    .bind(from.date_naive())
    .bind(to.date_naive())
    .fetch_all(pool)
    .await
}

/// The analytics lock of this database, held until the transaction ends (dropped with the run
/// if it is cancelled): one run at a time across processes, so a `devicehub analytics run`
/// waits for the scheduled one.
pub async fn lock(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('devicehub analytics'))")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The newest device time in the lake.
pub async fn newest_reading(pool: &PgPool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(max_ts) FROM lake_files")
        .fetch_one(pool)
        .await
}

/// The fingerprints of `model`'s built partitions among `parts`.
pub async fn builds(
    pool: &PgPool,
    model: &str,
    parts: &[String],
) -> Result<HashMap<String, String>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT part, inputs FROM analytics_builds WHERE model = $1 AND part = ANY($2)",
    )
    .bind(model)
    .bind(parts)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Records partitions of `model` as built from inputs with these fingerprints.
pub async fn record_builds(
    pool: &PgPool,
    model: &str,
    built: &[(String, String)],
) -> Result<(), sqlx::Error> {
    if built.is_empty() {
        return Ok(());
    }
    let parts: Vec<&str> = built.iter().map(|(p, _)| p.as_str()).collect();
    let inputs: Vec<&str> = built.iter().map(|(_, i)| i.as_str()).collect();
    sqlx::query(
        "INSERT INTO analytics_builds (model, part, inputs) \
         SELECT $1, p, i FROM UNNEST($2::text[], $3::text[]) AS t(p, i) \
         ON CONFLICT (model, part) DO UPDATE SET inputs = EXCLUDED.inputs, built_at = now()",
    )
    .bind(model)
    .bind(&parts)
    .bind(&inputs)
    .execute(pool)
    .await?;
    Ok(())
}

/// `model`'s built partitions from `from` (inclusive) to `to` (exclusive), by part name.
pub async fn builds_between(
    pool: &PgPool,
    model: &str,
    from: &str,
    to: &str,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT part, inputs FROM analytics_builds \
         WHERE model = $1 AND part >= $2 AND part < $3 ORDER BY part",
    )
    .bind(model)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await
}
