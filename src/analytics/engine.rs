//! DuckDB running the models: one in-memory database per run, reading lake files from local
//! paths (the archive directory, or the local copy of an S3 lake) and writing each model's
//! partitions as Parquet files into a staging directory, which the runner then stores in the
//! lake. All calls block: the runner makes them from `spawn_blocking`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use duckdb::{params, Connection};

use super::inputs::Inputs;
use super::models::{self, Model};
use super::AnalyticsError;
use crate::configuration::AnalyticsSettings;

/// What one bronze file holds: its rows and their span of device times.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileStats {
    pub rows: i64,
    pub min_ts: Option<DateTime<Utc>>,
    pub max_ts: Option<DateTime<Utc>>,
}

/// A partition a model wrote into the staging directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Staged {
    pub model: &'static str,
    pub date: NaiveDate,
    pub file: PathBuf,
}

/// The gold models' settings for one run.
#[derive(Debug, Clone, Copy)]
pub struct GoldScope {
    pub days_from: NaiveDate,
    pub days_to: NaiveDate,
    /// The newest device time in the lake: today's reporting window ends there.
    pub data_until: NaiveDateTime,
}

pub struct Engine {
    db: Connection,
    staging: PathBuf,
    late_after_s: u64,
    max_gap_s: u64,
    tariff_per_kwh: f64,
    batches: usize,
}

/// A string as a SQL literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn list(paths: &[PathBuf]) -> String {
    let items: Vec<String> = paths
        .iter()
        .map(|p| literal(&p.to_string_lossy()))
        .collect();
    format!("[{}]", items.join(", "))
}

fn timestamp(t: NaiveDateTime) -> String {
    format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S%.6f"))
}

fn date(d: NaiveDate) -> String {
    format!("DATE '{}'", d.format("%Y-%m-%d"))
}

impl Engine {
    /// A fresh database with the reference tables, spilling to `work_dir/spill`.
    pub fn open(settings: &AnalyticsSettings, staging: PathBuf) -> Result<Self, AnalyticsError> {
        let spill = settings.work_dir.join("spill");
        std::fs::create_dir_all(&spill)?;
        std::fs::create_dir_all(&staging)?;
        let db = Connection::open_in_memory()?;
        db.execute_batch(&format!(
            "SET threads = {}; SET memory_limit = '{}MB'; SET temp_directory = {};
             SET preserve_insertion_order = false; SET enable_progress_bar = false;",
            settings.threads,
            settings.memory_limit_mb,
            literal(&spill.to_string_lossy()),
        ))?;
        db.execute_batch(models::REFERENCE)?;
        Ok(Self {
            db,
            staging,
            late_after_s: settings.late_after_s,
            max_gap_s: settings.max_gap_s,
            tariff_per_kwh: settings.tariff_per_kwh,
            batches: 0,
        })
    }

    /// Rows and device-time span of each file, in order; a file DuckDB cannot read is logged
    /// and counted as empty, so one broken file never stops the models.
    pub fn file_stats(&self, files: &[PathBuf]) -> Result<Vec<FileStats>, AnalyticsError> {
        match self.stats_of(files) {
            Ok(stats) => Ok(stats),
            Err(_) if files.len() > 1 => files
                .iter()
                .map(|f| {
                    self.file_stats(std::slice::from_ref(f))
                        .map(|mut s| s.remove(0))
                })
                .collect(),
            Err(e) => {
                tracing::warn!(file = %files[0].display(), error = %e, "a lake file DuckDB cannot read is left out of the analytics");
                Ok(vec![FileStats::default()])
            }
        }
    }

    fn stats_of(&self, files: &[PathBuf]) -> Result<Vec<FileStats>, duckdb::Error> {
        let mut statement = self.db.prepare(&format!(
            "SELECT filename, count(*), epoch_us(min(ts)), epoch_us(max(ts))
             FROM read_parquet({}, filename = true, union_by_name = true) GROUP BY filename",
            list(files)
        ))?;
        let mut found = std::collections::HashMap::new();
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                FileStats {
                    rows: row.get(1)?,
                    min_ts: row
                        .get::<_, Option<i64>>(2)?
                        .and_then(DateTime::from_timestamp_micros),
                    max_ts: row
                        .get::<_, Option<i64>>(3)?
                        .and_then(DateTime::from_timestamp_micros),
                },
            ))
        })?;
        for row in rows {
            let (file, stats) = row?;
            found.insert(file, stats);
        }
        Ok(files
            .iter()
            .map(|f| {
                found
                    .remove(f.to_string_lossy().as_ref())
                    .unwrap_or_default()
            })
            .collect())
    }

    /// The registry, metadata, alert and quarantine tables the models join.
    pub fn load_inputs(&self, inputs: &Inputs) -> Result<(), AnalyticsError> {
        self.db.execute_batch(
            "CREATE OR REPLACE TABLE registry_devices (device_id VARCHAR, device_type VARCHAR,
                 location VARCHAR, owner VARCHAR, manufacturer VARCHAR, model VARCHAR,
                 installed_on DATE, mac VARCHAR);
             CREATE OR REPLACE TABLE device_metadata (mac VARCHAR, device_type VARCHAR,
                 owner VARCHAR, location VARCHAR, name VARCHAR);
             CREATE OR REPLACE TABLE registry_alerts_daily (device_id VARCHAR, date DATE,
                 alerts BIGINT, sequence_gaps BIGINT, offline_events BIGINT);
             CREATE OR REPLACE TABLE quarantine_daily (device_id VARCHAR, date DATE,
                 quarantined BIGINT);",
        )?;
        let mut devices = self.db.appender("registry_devices")?;
        for d in &inputs.devices {
            devices.append_row(params![
                d.device_id,
                d.device_type,
                d.location,
                d.owner,
                d.manufacturer,
                d.model,
                d.installed_on,
                d.mac
            ])?;
        }
        devices.flush()?;
        inputs.metadata.append_to(&self.db, "device_metadata")?;
        let mut alerts = self.db.appender("registry_alerts_daily")?;
        for a in &inputs.alerts {
            alerts.append_row(params![
                a.device_id,
                a.date,
                a.alerts,
                a.sequence_gaps,
                a.offline_events
            ])?;
        }
        alerts.flush()?;
        let mut quarantine = self.db.appender("quarantine_daily")?;
        for q in &inputs.quarantine {
            quarantine.append_row(params![q.device_id, q.date, q.quarantined])?;
        }
        quarantine.flush()?;
        Ok(())
    }

    fn next_dir(&mut self, what: &str) -> PathBuf {
        self.batches += 1;
        self.staging.join(format!("{what}-{}", self.batches))
    }

    /// Silver for the hour from `hour` out of `files` (the bronze files with readings in it), the
    /// hour before's silver file `before` (when built) giving the rolling averages their
    /// look-back; then the hour's summaries for gold ([`models::HOURLY`]) from what it wrote.
    /// Returns the rows written and the files: silver first, then one per summary.
    pub fn silver(
        &mut self,
        files: &[PathBuf],
        before: Option<&Path>,
        hour: NaiveDateTime,
    ) -> Result<(u64, Vec<Staged>), AnalyticsError> {
        let out = self.next_dir("silver");
        std::fs::create_dir_all(&out)?;
        let before = match before {
            Some(file) => format!(
                "SELECT device_id, metric, ts, value, is_valid FROM read_parquet({})",
                literal(&file.to_string_lossy())
            ),
            None => "SELECT NULL::VARCHAR AS device_id, NULL::VARCHAR AS metric,
                            NULL::TIMESTAMP AS ts, NULL::DOUBLE AS value, NULL::BOOLEAN AS is_valid
                     WHERE false"
                .to_owned(),
        };
        self.db.execute_batch(&format!(
            "CREATE OR REPLACE TEMP VIEW bronze_readings AS
                 SELECT ts::TIMESTAMP AS ts, device_id, device_type, metric, value, unit, seq,
                        received_at::TIMESTAMP AS received_at, topic, journal_no
                 FROM read_parquet({}, union_by_name = true, hive_partitioning = false);
             CREATE OR REPLACE TEMP VIEW silver_before AS {before};
             SET VARIABLE from_ts = {}; SET VARIABLE to_ts = {};
             SET VARIABLE late_after_s = {}; SET VARIABLE max_gap_s = {};",
            list(files),
            timestamp(hour),
            timestamp(hour + TimeDelta::hours(1)),
            self.late_after_s,
            self.max_gap_s,
        ))?;
        let file = out.join("readings.parquet");
        // The partition columns are in the folder names (Hive style), not in the file.
        let rows = self.db.execute(
            &format!(
                "COPY (SELECT * EXCLUDE (date, hour) FROM ({})) TO {} (FORMAT parquet, COMPRESSION snappy)",
                models::SILVER.sql,
                literal(&file.to_string_lossy())
            ),
            [],
        )?;
        self.db.execute_batch(&format!(
            "CREATE OR REPLACE TEMP VIEW silver_readings AS SELECT * FROM read_parquet({});",
            literal(&file.to_string_lossy())
        ))?;
        let date = hour.date();
        let mut staged = vec![Staged {
            model: "readings",
            date,
            file,
        }];
        for (model, folder) in models::HOURLY {
            let file = out.join(format!("{folder}.parquet"));
            self.db.execute(
                &format!(
                    "COPY ({}) TO {} (FORMAT parquet, COMPRESSION snappy)",
                    model.sql,
                    literal(&file.to_string_lossy())
                ),
                [],
            )?;
            staged.push(Staged {
                model: folder,
                date,
                file,
            });
        }
        Ok((rows as u64, staged))
    }

    /// Gold for the days of `scope` from the hourly summaries of those days and the day on each
    /// side (`energy_hours`, `device_hours`); each output model's file per day, empty days
    /// included.
    pub fn gold(
        &mut self,
        energy_hours: &[PathBuf],
        device_hours: &[PathBuf],
        scope: GoldScope,
    ) -> Result<Vec<Staged>, AnalyticsError> {
        if energy_hours.is_empty() || device_hours.is_empty() {
            return Ok(Vec::new());
        }
        let out = self.next_dir("gold");
        self.db.execute_batch(&format!(
            "CREATE OR REPLACE TEMP VIEW energy_hours AS
                 SELECT * FROM read_parquet({}, union_by_name = true, hive_partitioning = false);
             CREATE OR REPLACE TEMP VIEW device_hours AS
                 SELECT * FROM read_parquet({}, union_by_name = true, hive_partitioning = false);
             SET VARIABLE days_from = {}; SET VARIABLE days_to = {};
             SET VARIABLE data_until = {}; SET VARIABLE max_gap_s = {};
             SET VARIABLE tariff_per_kwh = {:?};",
            list(energy_hours),
            list(device_hours),
            date(scope.days_from),
            date(scope.days_to),
            timestamp(scope.data_until),
            self.max_gap_s,
            self.tariff_per_kwh,
        ))?;
        for Model { name, sql } in models::GOLD {
            self.db
                .execute_batch(&format!("CREATE OR REPLACE TEMP TABLE {name} AS {sql}"))?;
        }
        let mut staged = Vec::new();
        for name in models::GOLD_OUTPUTS {
            let mut day = scope.days_from;
            while day <= scope.days_to {
                let dir = out
                    .join(name)
                    .join(format!("date={}", day.format("%Y-%m-%d")));
                std::fs::create_dir_all(&dir)?;
                let file = dir.join("data.parquet");
                self.db.execute(
                    &format!(
                        "COPY (SELECT * EXCLUDE (date) FROM {name} WHERE date = {} ORDER BY ALL)
                         TO {} (FORMAT parquet, COMPRESSION snappy)",
                        date(day),
                        literal(&file.to_string_lossy())
                    ),
                    [],
                )?;
                staged.push(Staged {
                    model: name,
                    date: day,
                    file,
                });
                day = day.succ_opt().unwrap_or(NaiveDate::MAX);
            }
        }
        Ok(staged)
    }
}
