//! Gold: each day whose silver (or whose neighbours' silver, or alerts) changed is rebuilt
//! whole, in batches of consecutive days, from the hourly summaries silver writes beside its
//! readings (a day's gold reads a few dozen rows per device, not its readings).

use std::path::PathBuf;

use chrono::{NaiveDate, NaiveDateTime, TimeDelta, Utc};

use super::catalog;
use super::engine::{GoldScope, Staged};
use super::{
    blocking, day_part, fingerprint, inputs, midnight, models, results, Analytics, AnalyticsError,
    Progress, RunReport, SharedEngine, GOLD_DAYS_PER_BATCH, SILVER_ROOT,
};

impl Analytics {
    /// Rebuilds the gold days of `dates` whose silver (or alerts) changed; returns the days.
    pub(super) async fn gold(
        &self,
        engine: &SharedEngine,
        dates: &[NaiveDate],
        full: bool,
        progress: &dyn Progress,
        report: &mut RunReport,
    ) -> Result<usize, AnalyticsError> {
        let pool = &self.0.pool;
        let (Some(&first), Some(&last)) = (dates.first(), dates.last()) else {
            return Ok(0);
        };
        // The newest device time, not the clock: the same data gives the same answer.
        let data_until = catalog::newest_reading(pool)
            .await?
            .map_or_else(|| Utc::now().naive_utc(), |t| t.naive_utc());
        let wanted = self.wanted_days(dates, (first, last), data_until).await?;
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
            let tries: Vec<&[(NaiveDate, String)]> = match self
                .gold_batch(engine, batch, data_until)
                .await
            {
                Err(AnalyticsError::Duck(e)) if batch.len() > 1 => {
                    tracing::warn!(error = %e, "a gold batch failed; building its days one by one");
                    batch.chunks(1).collect()
                }
                result => {
                    note(result, batch, report)?;
                    Vec::new()
                }
            };
            for day in tries {
                let result = self.gold_batch(engine, day, data_until).await;
                note(result, day, report)?;
            }
            progress.advance(batch.len() as u64);
        }
        Ok(stale.len())
    }

    /// Every day of `dates` with silver, with the fingerprint of what it is built from: the
    /// model's version and settings, the day's registry signals, how far the data reaches, and
    /// the silver builds of the day and the days beside it.
    async fn wanted_days(
        &self,
        dates: &[NaiveDate],
        (first, last): (NaiveDate, NaiveDate),
        data_until: NaiveDateTime,
    ) -> Result<Vec<(NaiveDate, String)>, AnalyticsError> {
        let pool = &self.0.pool;
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
        Ok(wanted)
    }

    /// Builds consecutive gold days from the hourly summaries of those days and the day on each
    /// side.
    async fn gold_batch(
        &self,
        engine: &SharedEngine,
        batch: &[(NaiveDate, String)],
        data_until: chrono::NaiveDateTime,
    ) -> Result<(), AnalyticsError> {
        let (from, to) = (batch[0].0, batch[batch.len() - 1].0);
        let [energy, devices] = models::HOURLY.map(|(_, folder)| folder);
        let mut energy_hours = Vec::new();
        let mut device_hours = Vec::new();
        for day in (from - TimeDelta::days(1))
            .iter_days()
            .take_while(|d| *d <= to + TimeDelta::days(1))
        {
            energy_hours.extend(self.summary_files(energy, day).await?);
            device_hours.extend(self.summary_files(devices, day).await?);
        }
        let scope = GoldScope {
            days_from: from,
            days_to: to,
            data_until,
        };
        let staged = blocking(engine, move |e| e.gold(&energy_hours, &device_hours, scope)).await?;
        self.store_gold(&staged).await?;
        let done: Vec<(String, String)> = batch
            .iter()
            .map(|(d, inputs)| (day_part(*d), inputs.clone()))
            .collect();
        catalog::record_builds(&self.0.pool, "gold", &done).await?;
        Ok(())
    }

    /// Local paths of one day's files of an hourly summary.
    async fn summary_files(
        &self,
        summary: &str,
        day: NaiveDate,
    ) -> Result<Vec<PathBuf>, AnalyticsError> {
        let folder = format!("{SILVER_ROOT}/{summary}/date={}/", day_part(day));
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
            let key = results::key(s.model, s.date);
            self.0.lake.store(&key, &s.file).await?;
        }
        Ok(())
    }
}

/// A DuckDB failure goes into the report (the days stay stale and are tried again by the next
/// run); any other ends the run.
fn note(
    result: Result<(), AnalyticsError>,
    batch: &[(NaiveDate, String)],
    report: &mut RunReport,
) -> Result<(), AnalyticsError> {
    match result {
        Ok(()) => Ok(()),
        Err(AnalyticsError::Duck(e)) => {
            let part = day_part(batch[0].0);
            tracing::warn!(part, error = %e, "a gold day could not be built");
            report.failed.push(format!("gold {part}: {e}"));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Consecutive days, at most `max` a batch.
pub(super) fn consecutive_days(
    days: &[(NaiveDate, String)],
    max: usize,
) -> Vec<&[(NaiveDate, String)]> {
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
