//! The catalog and silver: new bronze files are read once for their span of device times, and
//! each hour whose inputs changed is rebuilt whole, in batches of consecutive hours.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};

use super::catalog::{self, LakeFile};
use super::engine::FileStats;
use super::footer;
use super::{
    blocking, day_part, fingerprint, hour_of, hour_part, midnight, models, utc, Analytics,
    AnalyticsError, Progress, RunReport, SharedEngine, FILES_PER_STATS, SILVER_PREFIX,
};
use crate::sinks::archive::lake::READINGS_PREFIX;

impl Analytics {
    /// Brings the catalog up to date with the bronze files of `dates`; returns how many files
    /// were new (or rewritten).
    pub(super) async fn catalog(
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
                let stats = file_stats(engine, paths).await?;
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
    pub(super) async fn silver(
        &self,
        engine: &SharedEngine,
        dates: &[NaiveDate],
        full: bool,
        progress: &dyn Progress,
        report: &mut RunReport,
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
        let wanted: Vec<Stale> = hours
            .iter()
            .map(|&hour| {
                let inputs = inputs_of(
                    &files,
                    hour - TimeDelta::hours(1),
                    hour + TimeDelta::hours(1),
                );
                let rows = inputs.iter().map(|f| rows_in(f, hour)).sum();
                // The registry and the metadata file are taken as they are when the hour is
                // built: a change reaches past hours with `devicehub analytics run --full`.
                let mut parts = vec![version.clone(), late.clone()];
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
        let stale: Vec<&Stale> = wanted
            .iter()
            .filter(|(h, inputs, _)| full || built.get(&hour_part(*h)) != Some(inputs))
            .collect();
        progress.stage("silver", stale.len() as u64);
        let mut rows_written = 0;
        for batch in batches(&stale, self.0.settings.batch_rows) {
            // A batch DuckDB fails on is built again hour by hour, so that one unreadable file
            // costs only the hours it has readings in.
            let tries = match self.silver_batch(engine, &files, &batch).await {
                Err(AnalyticsError::Duck(e)) if batch.len() > 1 => {
                    tracing::warn!(error = %e, "a silver batch failed; building its hours one by one");
                    batch.iter().map(|hour| vec![*hour]).collect()
                }
                result => {
                    rows_written += self.note(result, &batch, report)?;
                    Vec::new()
                }
            };
            for hour in tries {
                let result = self.silver_batch(engine, &files, &hour).await;
                rows_written += self.note(result, &hour, report)?;
            }
            progress.advance(batch.len() as u64);
        }
        Ok((stale.len(), rows_written))
    }

    /// Builds consecutive silver hours from the bronze files with readings in them or in the
    /// hour before; returns the rows written.
    async fn silver_batch(
        &self,
        engine: &SharedEngine,
        files: &[LakeFile],
        batch: &[&Stale],
    ) -> Result<u64, AnalyticsError> {
        let from = batch[0].0;
        let to = batch[batch.len() - 1].0 + TimeDelta::hours(1);
        let mut paths = Vec::new();
        for f in inputs_of(files, from - TimeDelta::hours(1), to) {
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
        catalog::record_builds(&self.0.pool, models::SILVER.name, &done).await?;
        Ok(rows)
    }

    /// A batch's rows; a DuckDB failure goes into the report (the hours stay stale and are
    /// tried again by the next run), any other ends the run.
    fn note(
        &self,
        result: Result<u64, AnalyticsError>,
        batch: &[&Stale],
        report: &mut RunReport,
    ) -> Result<u64, AnalyticsError> {
        match result {
            Ok(rows) => Ok(rows),
            Err(AnalyticsError::Duck(e)) => {
                let part = hour_part(batch[0].0);
                tracing::warn!(part, error = %e, "a silver hour could not be built");
                report.failed.push(format!("silver {part}: {e}"));
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }
}

/// A silver hour to build: its hour, the fingerprint of its inputs, its estimated rows.
pub(super) type Stale = (NaiveDateTime, String, u64);

/// Rows and span of device times of each file: from its footer, or where the footer cannot
/// say, from DuckDB reading it.
async fn file_stats(
    engine: &SharedEngine,
    paths: Vec<PathBuf>,
) -> Result<Vec<FileStats>, AnalyticsError> {
    let (paths, mut stats) = tokio::task::spawn_blocking(move || {
        let stats: Vec<Option<FileStats>> = paths.iter().map(|p| footer::stats(p)).collect();
        (paths, stats)
    })
    .await?;
    let unread: Vec<PathBuf> = paths
        .iter()
        .zip(&stats)
        .filter(|(_, s)| s.is_none())
        .map(|(p, _)| p.clone())
        .collect();
    if !unread.is_empty() {
        let mut read = blocking(engine, move |e| e.file_stats(&unread))
            .await?
            .into_iter();
        for s in stats.iter_mut().filter(|s| s.is_none()) {
            *s = read.next();
        }
    }
    Ok(stats.into_iter().map(Option::unwrap_or_default).collect())
}

/// The hours of `dates` that some catalogued file has readings in.
pub(super) fn hours_with_readings(files: &[LakeFile], dates: &[NaiveDate]) -> Vec<NaiveDateTime> {
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
pub(super) fn inputs_of(
    files: &[LakeFile],
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Vec<&LakeFile> {
    files
        .iter()
        .filter(|f| match (f.min_ts, f.max_ts) {
            (Some(min), Some(max)) => min < utc(to) && max >= utc(from),
            _ => false,
        })
        .collect()
}

/// About how many of the file's rows fall in `hour` (its rows spread evenly over its hours).
pub(super) fn rows_in(file: &LakeFile, hour: NaiveDateTime) -> u64 {
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
pub(super) fn batches<'a>(hours: &[&'a Stale], max_rows: u64) -> Vec<Vec<&'a Stale>> {
    let mut out: Vec<Vec<&Stale>> = Vec::new();
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
