//! Analytics: the bronze → silver → gold models of `analytics/models/*.sql`, run by DuckDB over
//! the Parquet lake, with their results written back to it.
//!
//! - **Bronze** is what the collector writes: `lake/readings/date=…/` (every reading), beside
//!   the router snapshots; PostgreSQL adds the registry, the alerts and quarantined records.
//! - **Silver** (`lake/silver/readings/date=…/hour=…/data.parquet`): one row per device, metric
//!   and device time, validated, flagged and enriched, built per hour.
//! - **Gold** (`lake/gold/{energy_daily_device,energy_daily_location,energy_daily_type,
//!   device_health,daily_summary}/date=…/data.parquet`): built per day.
//!
//! Runs are incremental and idempotent. The catalog ([`catalog`]) knows every bronze file and
//! the span of device times it holds; a silver hour is rebuilt when the fingerprint of its inputs
//! (the bronze files with readings in it or in the hour before, the registry's enrichment, the
//! models) differs from the one it was built from, and a gold day when the silver of it or of
//! the day on either side, or its alerts, changed. A partition is always rebuilt whole from its
//! inputs, so replays, late readings and re-runs never count anything twice.
//!
//! [`Analytics::run`] is `devicehub analytics run`; [`Analytics::run_on_schedule`] runs silver
//! every `analytics.silver_every_s` and gold every `analytics.gold_every_s` under the `analytics`
//! role. One run at a time per process.

mod catalog;
mod engine;
pub mod gold;
mod inputs;
mod lake;
pub mod models;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::configuration::{AnalyticsSettings, Settings};
use crate::inventory::MetadataFile;
use crate::metrics::Metrics;
use crate::sinks::archive::lake::READINGS_PREFIX;
use crate::stores::objects::{ObjectError, ObjectStore};
use catalog::LakeFile;
use engine::{Engine, GoldScope, Staged};
use lake::LakeFiles;

/// Where silver lives in the lake.
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
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let every = |s: u64| {
            let mut timer = tokio::time::interval(Duration::from_secs(s));
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            timer
        };
        let mut silver = every(self.0.settings.silver_every_s);
        let mut gold = every(self.0.settings.gold_every_s);
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
                    Ok(report) => {
                        metrics.analytics_ran(layer, "ok");
                        tracing::info!(layer, ?report, "analytics run");
                    }
                    Err(e) => {
                        metrics.analytics_ran(layer, "failed");
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
        let enrichment = enrichment_fingerprint(&inputs);
        blocking(engine, move |e| e.load_inputs(&inputs)).await?;
        if request.silver {
            report.new_files = self.catalog(engine, &dates, progress).await?;
            let (hours, rows) = self
                .silver(engine, &dates, request.full, &enrichment, progress)
                .await?;
            report.silver_hours = hours;
            report.silver_rows = rows;
        }
        if request.gold {
            report.gold_days = self.gold(engine, &dates, request.full, progress).await?;
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
                    .filter_map(|f| {
                        let name = f.trim_end_matches('/').rsplit('/').next()?;
                        NaiveDate::parse_from_str(name.strip_prefix("date=")?, "%Y-%m-%d").ok()
                    })
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

    /// Brings the catalog up to date with the bronze files of `dates`; returns how many files
    /// were new (or rewritten).
    async fn catalog(
        &self,
        engine: &SharedEngine,
        dates: &[NaiveDate],
        progress: &dyn Progress,
    ) -> Result<usize, AnalyticsError> {
        progress.stage("catalog", dates.len() as u64);
        let pool = &self.0.pool;
        let mut new_files = 0;
        for &date in dates {
            let folder = format!("{READINGS_PREFIX}/date={}/", day_part(date));
            let listed: BTreeMap<String, u64> = self
                .0
                .lake
                .objects()
                .list_all(&folder)
                .await?
                .into_iter()
                .filter(|o| o.filename.ends_with(".parquet"))
                .map(|o| (o.filename, o.size))
                .collect();
            let known = catalog::known(pool, date).await?;
            let gone: Vec<String> = known
                .keys()
                .filter(|k| !listed.contains_key(*k))
                .cloned()
                .collect();
            for key in &gone {
                self.0.lake.forget(key).await;
            }
            catalog::forget(pool, &gone).await?;
            let fresh: Vec<(String, u64)> = listed
                .into_iter()
                .filter(|(k, size)| known.get(k) != Some(&(*size as i64)))
                .collect();
            for chunk in fresh.chunks(FILES_PER_STATS) {
                let mut keys = Vec::with_capacity(chunk.len());
                let mut paths = Vec::with_capacity(chunk.len());
                for (key, size) in chunk {
                    if let Some(path) = self.0.lake.local(key, *size).await? {
                        keys.push((key.clone(), *size));
                        paths.push(path);
                    }
                }
                if paths.is_empty() {
                    continue;
                }
                let stats = blocking(engine, move |e| e.file_stats(&paths)).await?;
                let files: Vec<LakeFile> = keys
                    .into_iter()
                    .zip(stats)
                    .map(|((key, size), s)| LakeFile {
                        key,
                        size: size as i64,
                        rows: s.rows,
                        min_ts: s.min_ts,
                        max_ts: s.max_ts,
                    })
                    .collect();
                new_files += files.len();
                catalog::record(pool, date, &files).await?;
            }
            progress.advance(1);
        }
        Ok(new_files)
    }

    /// Rebuilds the silver hours of `dates` whose inputs changed (all with `full`); returns the
    /// hours and rows written.
    async fn silver(
        &self,
        engine: &SharedEngine,
        dates: &[NaiveDate],
        full: bool,
        enrichment: &str,
        progress: &dyn Progress,
    ) -> Result<(usize, u64), AnalyticsError> {
        let pool = &self.0.pool;
        let (Some(&first), Some(&last)) = (dates.first(), dates.last()) else {
            return Ok((0, 0));
        };
        let (start, end) = (midnight(first), midnight(last + TimeDelta::days(1)));
        let files = catalog::overlapping(
            pool,
            utc(start - TimeDelta::hours(1)),
            utc(end + TimeDelta::hours(1)),
        )
        .await?;
        let hours = hours_with_readings(&files, dates);
        let version = models::version();
        let late = self.0.settings.late_after_s.to_string();
        let wanted: Vec<(NaiveDateTime, String, u64)> = hours
            .iter()
            .map(|&hour| {
                let inputs = inputs_of(
                    &files,
                    hour - TimeDelta::hours(1),
                    hour + TimeDelta::hours(1),
                );
                let rows = inputs.iter().map(|f| rows_in(f, hour)).sum();
                let mut parts = vec![version.clone(), late.clone(), enrichment.to_owned()];
                parts.extend(inputs.iter().map(|f| format!("{}:{}", f.key, f.size)));
                (hour, fingerprint(parts), rows)
            })
            .collect();
        let built = catalog::builds(
            pool,
            models::SILVER.name,
            &wanted
                .iter()
                .map(|(h, _, _)| hour_part(*h))
                .collect::<Vec<_>>(),
        )
        .await?;
        let stale: Vec<&(NaiveDateTime, String, u64)> = wanted
            .iter()
            .filter(|(h, inputs, _)| full || built.get(&hour_part(*h)) != Some(inputs))
            .collect();
        progress.stage("silver", stale.len() as u64);
        let mut rows_written = 0;
        for batch in batches(&stale, self.0.settings.batch_rows) {
            let from = batch[0].0;
            let to = batch[batch.len() - 1].0 + TimeDelta::hours(1);
            let mut paths = Vec::new();
            for f in inputs_of(&files, from - TimeDelta::hours(1), to) {
                if let Some(path) = self.0.lake.local(&f.key, f.size as u64).await? {
                    paths.push(path);
                }
            }
            let (rows, staged) = blocking(engine, move |e| e.silver(&paths, from, to)).await?;
            for s in &staged {
                let key = format!(
                    "{SILVER_PREFIX}/date={}/hour={:02}/data.parquet",
                    day_part(s.date),
                    s.hour.unwrap_or_default()
                );
                self.0.lake.store(&key, &s.file).await?;
            }
            let done: Vec<(String, String)> = batch
                .iter()
                .map(|(h, inputs, _)| (hour_part(*h), inputs.clone()))
                .collect();
            catalog::record_builds(pool, models::SILVER.name, &done).await?;
            rows_written += rows;
            progress.advance(batch.len() as u64);
        }
        Ok((stale.len(), rows_written))
    }

    /// Rebuilds the gold days of `dates` whose silver (or alerts) changed; returns the days.
    async fn gold(
        &self,
        engine: &SharedEngine,
        dates: &[NaiveDate],
        full: bool,
        progress: &dyn Progress,
    ) -> Result<usize, AnalyticsError> {
        let pool = &self.0.pool;
        let (Some(&first), Some(&last)) = (dates.first(), dates.last()) else {
            return Ok(0);
        };
        let now = Utc::now().naive_utc();
        let data_until = catalog::newest_reading(pool)
            .await?
            .map_or(now, |t| t.naive_utc().min(now));
        let silver = catalog::builds_between(
            pool,
            models::SILVER.name,
            &day_part(first - TimeDelta::days(1)),
            &day_part(last + TimeDelta::days(2)),
        )
        .await?;
        let settings = &self.0.settings;
        let version = models::version();
        let mut wanted = Vec::new();
        for &day in dates {
            let of_day = |d: NaiveDate| {
                let p = day_part(d);
                silver
                    .iter()
                    .filter(move |(part, _)| part.starts_with(&p))
                    .map(|(part, inputs)| format!("{part}={inputs}"))
            };
            if of_day(day).next().is_none() {
                continue;
            }
            let mut parts = vec![
                version.clone(),
                format!("{:?}", settings.tariff_per_kwh),
                settings.max_gap_s.to_string(),
                inputs::day_signals(pool, day).await?,
                data_until
                    .min(midnight(day + TimeDelta::days(1)))
                    .to_string(),
            ];
            for d in [day - TimeDelta::days(1), day, day + TimeDelta::days(1)] {
                parts.extend(of_day(d));
            }
            wanted.push((day, fingerprint(parts)));
        }
        let built = catalog::builds(
            pool,
            "gold",
            &wanted.iter().map(|(d, _)| day_part(*d)).collect::<Vec<_>>(),
        )
        .await?;
        let stale: Vec<(NaiveDate, String)> = wanted
            .into_iter()
            .filter(|(d, inputs)| full || built.get(&day_part(*d)) != Some(inputs))
            .collect();
        progress.stage("gold", stale.len() as u64);
        for batch in consecutive_days(&stale, GOLD_DAYS_PER_BATCH) {
            let (from, to) = (batch[0].0, batch[batch.len() - 1].0);
            let mut paths = Vec::new();
            for day in (from - TimeDelta::days(1))
                .iter_days()
                .take_while(|d| *d <= to + TimeDelta::days(1))
            {
                paths.extend(self.silver_files(day).await?);
            }
            let scope = GoldScope {
                days_from: from,
                days_to: to,
                data_until,
            };
            let staged = blocking(engine, move |e| e.gold(&paths, scope)).await?;
            self.store_gold(&staged).await?;
            let done: Vec<(String, String)> = batch
                .iter()
                .map(|(d, inputs)| (day_part(*d), inputs.clone()))
                .collect();
            catalog::record_builds(pool, "gold", &done).await?;
            progress.advance(batch.len() as u64);
        }
        Ok(stale.len())
    }

    /// Local paths of one day's silver files.
    async fn silver_files(&self, day: NaiveDate) -> Result<Vec<PathBuf>, AnalyticsError> {
        let folder = format!("{SILVER_PREFIX}/date={}/", day_part(day));
        let mut paths = Vec::new();
        for o in self.0.lake.objects().list_all(&folder).await? {
            if o.filename.ends_with(".parquet") {
                if let Some(path) = self.0.lake.local(&o.filename, o.size).await? {
                    paths.push(path);
                }
            }
        }
        paths.sort();
        Ok(paths)
    }

    async fn store_gold(&self, staged: &[Staged]) -> Result<(), AnalyticsError> {
        for s in staged {
            let key = gold::key(s.model, s.date);
            self.0.lake.store(&key, &s.file).await?;
        }
        Ok(())
    }
}

/// A fingerprint of what silver takes from the registry and the metadata file.
fn enrichment_fingerprint(inputs: &inputs::Inputs) -> String {
    let mut parts: Vec<String> = inputs.devices.iter().map(|d| format!("{d:?}")).collect();
    parts.extend(inputs.metadata.iter().map(|m| format!("{m:?}")));
    parts.sort_unstable();
    fingerprint(parts)
}

/// The hours of `dates` that some catalogued file has readings in.
fn hours_with_readings(files: &[LakeFile], dates: &[NaiveDate]) -> Vec<NaiveDateTime> {
    let days: BTreeSet<NaiveDate> = dates.iter().copied().collect();
    let mut hours = BTreeSet::new();
    for f in files {
        let (Some(min), Some(max)) = (f.min_ts, f.max_ts) else {
            continue;
        };
        let mut hour = hour_of(min);
        let last = hour_of(max);
        while hour <= last {
            if days.contains(&hour.date()) {
                hours.insert(hour);
            }
            hour += TimeDelta::hours(1);
        }
    }
    hours.into_iter().collect()
}

/// The files with readings in `[from, to)`.
fn inputs_of(files: &[LakeFile], from: NaiveDateTime, to: NaiveDateTime) -> Vec<&LakeFile> {
    files
        .iter()
        .filter(|f| match (f.min_ts, f.max_ts) {
            (Some(min), Some(max)) => min < utc(to) && max >= utc(from),
            _ => false,
        })
        .collect()
}

/// About how many of the file's rows fall in `hour` (its rows spread evenly over its hours).
fn rows_in(file: &LakeFile, hour: NaiveDateTime) -> u64 {
    let (Some(min), Some(max)) = (file.min_ts, file.max_ts) else {
        return 0;
    };
    let hours = ((hour_of(max) - hour_of(min)).num_hours() + 1).max(1) as u64;
    if hour < hour_of(min) || hour > hour_of(max) {
        return 0;
    }
    file.rows.max(0) as u64 / hours
}

/// Consecutive hours, in batches of at most `max_rows` rows (an hour alone may exceed it).
fn batches<'a>(
    hours: &[&'a (NaiveDateTime, String, u64)],
    max_rows: u64,
) -> Vec<Vec<&'a (NaiveDateTime, String, u64)>> {
    let mut out: Vec<Vec<&(NaiveDateTime, String, u64)>> = Vec::new();
    let mut rows = 0;
    for &hour in hours {
        let joins = out.last().is_some_and(|batch| {
            let previous = batch[batch.len() - 1].0;
            previous + TimeDelta::hours(1) == hour.0 && rows + hour.2 <= max_rows
        });
        if joins {
            rows += hour.2;
            if let Some(batch) = out.last_mut() {
                batch.push(hour);
            }
        } else {
            rows = hour.2;
            out.push(vec![hour]);
        }
    }
    out
}

/// Consecutive days, at most `max` a batch.
fn consecutive_days(days: &[(NaiveDate, String)], max: usize) -> Vec<&[(NaiveDate, String)]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=days.len() {
        let breaks =
            i == days.len() || i - start >= max || days[i - 1].0 + TimeDelta::days(1) != days[i].0;
        if breaks {
            out.push(&days[start..i]);
            start = i;
        }
    }
    out
}

#[cfg(test)]
mod tests;
