//! The catalog and silver: new bronze files are read once for their span of device times, and
//! each hour whose inputs changed is rebuilt whole, oldest first (an hour's rolling averages
//! look back into the hour before's silver).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta, Timelike};

use super::catalog::{self, LakeFile};
use super::engine::FileStats;
use super::footer;
use super::{
    blocking, day_part, fingerprint, hour_of, hour_part, midnight, models, utc, Analytics,
    AnalyticsError, Progress, RunReport, SharedEngine, FILES_PER_STATS, SILVER_PREFIX, SILVER_ROOT,
};
use crate::lake::READINGS_PREFIX;

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

    /// Rebuilds the silver hours of `dates` whose inputs changed (all with `full`), oldest
    /// first, each with its hourly summaries; returns the hours and rows written.
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
        let wanted = self.wanted_hours(&files, dates);
        let built = catalog::builds(
            pool,
            models::SILVER.name,
            &wanted
                .iter()
                .map(|(h, _)| hour_part(*h))
                .collect::<Vec<_>>(),
        )
        .await?;
        let stale: Vec<&Stale> = wanted
            .iter()
            .filter(|(h, inputs)| full || built.get(&hour_part(*h)) != Some(inputs))
            .collect();
        progress.stage("silver", stale.len() as u64);
        let mut in_lake = self
            .silver_in_lake(first - TimeDelta::days(1), last)
            .await?;
        let mut rows_written = 0;
        let mut failed = None;
        for &&(hour, ref inputs) in &stale {
            let before = hour - TimeDelta::hours(1);
            let result = if failed == Some(before) {
                // Its look-back would be the hour before's old silver: it waits for that hour.
                Err(format!(
                    "the hour before ({}) was not built",
                    hour_part(before)
                ))
            } else {
                match self
                    .silver_hour(engine, &files, &mut in_lake, hour, inputs)
                    .await
                {
                    Ok(rows) => {
                        rows_written += rows;
                        Ok(())
                    }
                    Err(AnalyticsError::Duck(e)) => Err(e.to_string()),
                    Err(e) => return Err(e),
                }
            };
            if let Err(e) = result {
                let part = hour_part(hour);
                tracing::warn!(part, error = %e, "a silver hour could not be built; the next run tries again");
                report.failed.push(format!("silver {part}: {e}"));
                failed = Some(hour);
            }
            progress.advance(1);
        }
        Ok((stale.len(), rows_written))
    }

    /// Every hour of `dates` with readings, with the fingerprint of what it is built from: the
    /// model's version and settings and the bronze files of the hour and the hour before.
    fn wanted_hours(&self, files: &[LakeFile], dates: &[NaiveDate]) -> Vec<Stale> {
        let hours = hours_with_readings(files, dates);
        let settings = [
            models::version(),
            self.0.settings.late_after_s.to_string(),
            self.0.settings.max_gap_s.to_string(),
        ];
        hours
            .iter()
            .map(|&hour| {
                // The hour's readings and the hour before's (the rolling averages look back into
                // it). The registry and the metadata file are taken as they are when the hour is
                // built: a change reaches past hours with `devicehub analytics run --full`.
                let inputs = inputs_of(
                    files,
                    hour - TimeDelta::hours(1),
                    hour + TimeDelta::hours(1),
                );
                let mut parts = settings.to_vec();
                parts.extend(inputs.iter().map(|f| format!("{}:{}", f.key, f.size)));
                (hour, fingerprint(parts))
            })
            .collect()
    }

    /// Builds one silver hour and its summaries from the bronze files with readings in it and
    /// the hour before's silver; returns the rows written.
    async fn silver_hour(
        &self,
        engine: &SharedEngine,
        files: &[LakeFile],
        in_lake: &mut BTreeMap<String, u64>,
        hour: NaiveDateTime,
        inputs: &str,
    ) -> Result<u64, AnalyticsError> {
        let mut paths = Vec::new();
        for f in inputs_of(files, hour, hour + TimeDelta::hours(1)) {
            if let Some(path) = self.0.lake.local(&f.key, f.size as u64).await? {
                paths.push(path);
            }
        }
        if paths.is_empty() {
            // Its files left the lake since the catalog was read: the next run forgets them.
            return Ok(0);
        }
        let key = silver_key("readings", hour - TimeDelta::hours(1));
        let before = match in_lake.get(&key) {
            Some(&size) => self.0.lake.local(&key, size).await?,
            None => None,
        };
        let (rows, staged) =
            blocking(engine, move |e| e.silver(&paths, before.as_deref(), hour)).await?;
        for s in &staged {
            let key = silver_key(s.model, hour);
            self.0.lake.store(&key, &s.file).await?;
            in_lake.insert(key, std::fs::metadata(&s.file)?.len());
        }
        catalog::record_builds(
            &self.0.pool,
            models::SILVER.name,
            &[(hour_part(hour), inputs.to_owned())],
        )
        .await?;
        Ok(rows)
    }

    /// The silver files in the lake of the dates `from..=to`, with their sizes.
    async fn silver_in_lake(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<BTreeMap<String, u64>, AnalyticsError> {
        let mut found = BTreeMap::new();
        for day in from.iter_days().take_while(|d| *d <= to) {
            let folder = format!("{SILVER_PREFIX}/date={}/", day_part(day));
            for o in self.0.lake.objects().list_all(&folder).await? {
                found.insert(o.filename, o.size);
            }
        }
        Ok(found)
    }
}

/// The lake key of a silver hour's file: `lake/silver/{folder}/date=…/hour=…/data.parquet`,
/// `folder` being `readings` or one of the hourly summaries.
pub(super) fn silver_key(folder: &str, hour: NaiveDateTime) -> String {
    format!(
        "{SILVER_ROOT}/{folder}/date={}/hour={:02}/data.parquet",
        day_part(hour.date()),
        hour.hour()
    )
}

/// A silver hour to build: its hour and the fingerprint of its inputs.
pub(super) type Stale = (NaiveDateTime, String);

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
