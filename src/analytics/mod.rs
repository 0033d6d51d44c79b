//! Analytics: the bronze → silver → gold models of `analytics/models/*.sql`, run by DuckDB over
//! the Parquet lake, with their results written back to it.
//!
//! - **Bronze** is what the collector writes: `lake/readings/date=…/` (every reading), beside
//!   the router snapshots; PostgreSQL adds the registry, the alerts and quarantined records.
//! - **Silver** (`lake/silver/readings/date=…/hour=…/data.parquet`): one row per device, metric
//!   and device time, validated, flagged and enriched, built one hour at a time (the rolling
//!   averages look back into the hour before's silver); beside each hour its summaries for gold
//!   (`lake/silver/{energy_hours,device_hours}/…`), so that gold never reads readings.
//! - **Gold** (`lake/gold/{energy_daily_device,energy_daily_location,energy_daily_type,
//!   device_health,daily_summary}/date=…/data.parquet`): built per day.
//!
//! Runs are incremental and idempotent. The catalog ([`catalog`]) knows every bronze file and
//! the span of device times it holds; a silver hour is rebuilt when the fingerprint of its inputs
//! (the bronze files with readings in it or in the hour before, the models, the settings they
//! use) differs from the one it was built from, and a gold day when the silver of it or of the
//! day on either side, or its alerts, changed. A partition is always rebuilt whole from its inputs, so replays, late readings
//! and re-runs never count anything twice. The registry and the metadata file enrich an hour as
//! they are when it is built (`--full` applies later changes to past hours).
//!
//! [`Analytics::run`] is `devicehub analytics run`; [`Analytics::run_on_schedule`] runs silver
//! every `analytics.silver_every_s` and gold every `analytics.gold_every_s` under the `analytics`
//! role. One run at a time (a PostgreSQL advisory lock, across processes).

mod catalog;
mod engine;
mod footer;
mod gold;
mod inputs;
mod lake;
pub mod models;
pub mod results;
mod silver;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::configuration::{AnalyticsSettings, Settings};
use crate::inventory::MetadataFile;
use crate::lake::READINGS_PREFIX;
use crate::metrics::AnalyticsMetrics;
use crate::stores::objects::{ObjectError, ObjectStore};
use engine::Engine;
use lake::LakeFiles;

/// Where silver lives in the lake: the readings, and beside them their hourly summaries for gold.
pub const SILVER_ROOT: &str = "lake/silver";
/// Where the silver readings live in the lake.
pub const SILVER_PREFIX: &str = "lake/silver/readings";
/// Where gold lives in the lake: `{GOLD_PREFIX}/{model}/date=…/data.parquet`.
pub const GOLD_PREFIX: &str = "lake/gold";

/// Bronze files one DuckDB statement reads for the catalog.
const FILES_PER_STATS: usize = 1000;
/// Days of gold one DuckDB statement builds.
const GOLD_DAYS_PER_BATCH: usize = 7;

#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("DuckDB: {0}")]
    Duck(#[from] duckdb::Error),
    #[error("the database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the lake: {0}")]
    Lake(#[from] ObjectError),
    #[error("the analytics work directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("the device metadata: {0}")]
    Metadata(#[from] crate::inventory::MetadataError),
    #[error("an analytics task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What a run builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunRequest {
    /// Every date partition of the lake (or of `from..=to`), rebuilt whatever the fingerprints.
    pub full: bool,
    /// Dates to look at; without them, the last `analytics.lookback_days` (all with `full`).
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub silver: bool,
    pub gold: bool,
}

impl RunRequest {
    /// The scheduled, incremental run of one layer.
    pub fn layer(silver: bool) -> Self {
        Self {
            full: false,
            from: None,
            to: None,
            silver,
            gold: !silver,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunReport {
    pub dates: usize,
    /// Bronze files new to the catalog (or rewritten).
    pub new_files: usize,
    pub silver_hours: usize,
    pub silver_rows: u64,
    pub gold_days: usize,
    pub seconds: f64,
    /// Seconds of each stage: the catalog, silver, gold.
    pub stage_seconds: [f64; 3],
    /// Partitions DuckDB could not build (they stay stale and are tried again by the next run).
    pub failed: Vec<String>,
}

/// Where a run reports how far it is (the command line draws a progress bar).
pub trait Progress: Send + Sync {
    /// A stage of `total` steps begins.
    fn stage(&self, name: &'static str, total: u64);
    fn advance(&self, steps: u64);
}

/// No progress shown (scheduled runs log their report instead).
pub struct Quiet;

impl Progress for Quiet {
    fn stage(&self, _: &'static str, _: u64) {}
    fn advance(&self, _: u64) {}
}

struct Inner {
    settings: AnalyticsSettings,
    pool: PgPool,
    lake: LakeFiles,
    metadata: MetadataFile,
    running: tokio::sync::Mutex<()>,
}

/// The analytics runner; cheap to clone.
#[derive(Clone)]
pub struct Analytics(Arc<Inner>);

type SharedEngine = Arc<Mutex<Engine>>;

/// Runs `f` on the engine in a blocking thread.
async fn blocking<T: Send + 'static>(
    engine: &SharedEngine,
    f: impl FnOnce(&mut Engine) -> Result<T, AnalyticsError> + Send + 'static,
) -> Result<T, AnalyticsError> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut engine = engine.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut engine)
    })
    .await?
}

fn hour_part(hour: NaiveDateTime) -> String {
    hour.format("%Y-%m-%dT%H").to_string()
}

fn day_part(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn midnight(day: NaiveDate) -> NaiveDateTime {
    day.and_hms_opt(0, 0, 0).unwrap_or_default()
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// The hour `t` is in.
fn hour_of(t: DateTime<Utc>) -> NaiveDateTime {
    let t = t.naive_utc();
    t.date().and_hms_opt(t.hour(), 0, 0).unwrap_or_default()
}

/// The date of a Hive partition folder (`…/date=YYYY-MM-DD/`).
pub(crate) fn partition_date(folder: &str) -> Option<NaiveDate> {
    let name = folder.trim_end_matches('/').rsplit('/').next()?;
    NaiveDate::parse_from_str(name.strip_prefix("date=")?, "%Y-%m-%d").ok()
}

fn fingerprint(parts: impl IntoIterator<Item = impl AsRef<[u8]>>) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_ref());
        hash.update([0]);
    }
    models::hex(&hash.finalize()[..16])
}

impl Analytics {
    pub fn new(
        settings: &Settings,
        pool: PgPool,
        objects: ObjectStore,
        metadata: MetadataFile,
    ) -> Self {
        Self(Arc::new(Inner {
            settings: settings.analytics.clone(),
            lake: LakeFiles::new(objects, &settings.analytics.work_dir),
            pool,
            metadata,
            running: tokio::sync::Mutex::new(()),
        }))
    }

    /// Runs silver every `silver_every_s` and gold every `gold_every_s` until `shutdown`; a
    /// failed run is logged and counted (`devicehub_analytics_runs_total`), and the next one
    /// tries again.
    pub async fn run_on_schedule(
        self,
        metrics: AnalyticsMetrics,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let every = |s: u64| {
            let mut timer = tokio::time::interval(Duration::from_secs(s));
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            timer
        };
        let mut silver = every(self.0.settings.silver_every_s);
        let mut gold = every(self.0.settings.gold_every_s);
        metrics.scheduled();
        loop {
            let (layer, request) = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                _ = silver.tick() => ("silver", RunRequest::layer(true)),
                _ = gold.tick() => ("gold", RunRequest::layer(false)),
            };
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                result = self.run(&request, &Quiet) => match result {
                    Ok(report) if report.failed.is_empty() => {
                        metrics.ran(layer, "ok");
                        tracing::info!(layer, ?report, "analytics run");
                    }
                    Ok(report) => {
                        metrics.ran(layer, "failed");
                        tracing::warn!(layer, ?report, "analytics run left partitions unbuilt; the next one tries again");
                    }
                    Err(e) => {
                        metrics.ran(layer, "failed");
                        tracing::warn!(layer, error = %e, "analytics run failed; the next one tries again");
                    }
                },
            }
        }
    }

    /// One run: the catalog and silver, then gold, as `request` asks.
    pub async fn run(
        &self,
        request: &RunRequest,
        progress: &dyn Progress,
    ) -> Result<RunReport, AnalyticsError> {
        let _one_at_a_time = self.0.running.lock().await;
        let lock = catalog::lock(&self.0.pool).await?;
        let started = Instant::now();
        let staging = self
            .0
            .settings
            .work_dir
            .join("staging")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let settings = self.0.settings.clone();
        let dir = staging.clone();
        let engine = tokio::task::spawn_blocking(move || Engine::open(&settings, dir)).await??;
        let engine = Arc::new(Mutex::new(engine));
        let result = self.run_with(&engine, request, progress).await;
        let _ = tokio::fs::remove_dir_all(&staging).await;
        lock.rollback().await?;
        let mut report = result?;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    async fn run_with(
        &self,
        engine: &SharedEngine,
        request: &RunRequest,
        progress: &dyn Progress,
    ) -> Result<RunReport, AnalyticsError> {
        let dates = self.dates(request).await?;
        let mut report = RunReport {
            dates: dates.len(),
            ..RunReport::default()
        };
        let (Some(&first), Some(&last)) = (dates.first(), dates.last()) else {
            return Ok(report);
        };
        let inputs = inputs::load(
            &self.0.pool,
            self.0.metadata.current(),
            (first - TimeDelta::days(1), last + TimeDelta::days(2)),
        )
        .await?;
        blocking(engine, move |e| e.load_inputs(&inputs)).await?;
        if request.silver {
            let started = Instant::now();
            report.new_files = self.catalog(engine, &dates, progress).await?;
            report.stage_seconds[0] = started.elapsed().as_secs_f64();
            let started = Instant::now();
            let (hours, rows) = self
                .silver(engine, &dates, request.full, progress, &mut report)
                .await?;
            report.silver_hours = hours;
            report.silver_rows = rows;
            report.stage_seconds[1] = started.elapsed().as_secs_f64();
        }
        if request.gold {
            let started = Instant::now();
            report.gold_days = self
                .gold(engine, &dates, request.full, progress, &mut report)
                .await?;
            report.stage_seconds[2] = started.elapsed().as_secs_f64();
        }
        if !request.full && request.from.is_none() && request.to.is_none() {
            let keep = i64::from(self.0.settings.lookback_days) + 1;
            let before = Utc::now().date_naive() - TimeDelta::days(keep);
            let mut prefixes = vec![READINGS_PREFIX.to_owned(), SILVER_PREFIX.to_owned()];
            prefixes.extend(
                models::HOURLY
                    .iter()
                    .map(|(_, folder)| format!("{SILVER_ROOT}/{folder}")),
            );
            self.0.lake.prune(&prefixes, before).await?;
        }
        Ok(report)
    }

    /// The date partitions a run looks at, oldest first.
    async fn dates(&self, request: &RunRequest) -> Result<Vec<NaiveDate>, AnalyticsError> {
        let today = Utc::now().date_naive();
        let in_lake = || async {
            let folders = self
                .0
                .lake
                .objects()
                .folders(&format!("{READINGS_PREFIX}/"))
                .await?;
            Ok::<_, AnalyticsError>(
                folders
                    .iter()
                    .filter_map(|f| partition_date(f))
                    .collect::<BTreeSet<NaiveDate>>(),
            )
        };
        let dates: BTreeSet<NaiveDate> = match (request.from, request.to, request.full) {
            (None, None, true) => in_lake().await?,
            (None, None, false) => {
                let back = i64::from(self.0.settings.lookback_days.max(1)) - 1;
                (today - TimeDelta::days(back))
                    .iter_days()
                    .take_while(|d| *d <= today)
                    .collect()
            }
            (from, to, _) => {
                let to = to.unwrap_or(today);
                let from = from.unwrap_or(to);
                from.iter_days().take_while(|d| *d <= to).collect()
            }
        };
        Ok(dates.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;
