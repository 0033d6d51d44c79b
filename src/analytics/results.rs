//! The gold tables as the API answers with them: each day's Parquet file of a gold model,
//! fetched from the lake (a directory or S3) and read with the `parquet` crate, so the API needs
//! no DuckDB and any replica can answer.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures_util::StreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::GOLD_PREFIX;
use crate::stores::objects::{ObjectError, ObjectStore};

/// Gold files fetched at once by one request.
const FETCHES: usize = 16;

/// The key of one day's file of a gold model.
pub fn key(model: &str, date: NaiveDate) -> String {
    format!(
        "{GOLD_PREFIX}/{model}/date={}/data.parquet",
        date.format("%Y-%m-%d")
    )
}

#[derive(Debug, thiserror::Error)]
pub enum GoldError {
    #[error("the lake: {0}")]
    Lake(#[from] ObjectError),
    #[error("{key}: {error}")]
    File { key: String, error: String },
}

/// How daily energy is grouped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    #[default]
    Device,
    Location,
    Type,
}

impl GroupBy {
    fn model(self) -> &'static str {
        match self {
            GroupBy::Device => "energy_daily_device",
            GroupBy::Location => "energy_daily_location",
            GroupBy::Type => "energy_daily_type",
        }
    }
}

/// A day's energy of one device, location or device type.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DailyEnergy {
    pub date: NaiveDate,
    /// With `group_by=device`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The device's location (room), or with `group_by=location` the group's; `unknown` when
    /// neither the registry nor the metadata file says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    pub energy_kwh: f64,
    /// `energy_kwh` × `analytics.tariff_per_kwh`.
    pub cost: f64,
    /// Where the energy came from: `counter`, `interval` or `power` (several joined by `+`).
    pub method: String,
    /// The readings (counter steps, intervals, power spans) summed.
    pub readings: i64,
    /// Devices in the group (location and type only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub devices: Option<i64>,
}

/// One device's health on one day (see `analytics/models/device_health.sql`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DeviceHealth {
    pub date: NaiveDate,
    pub device_id: String,
    pub device_type: Option<String>,
    pub location: Option<String>,
    /// Seed 002: 0.4·quality + 0.3·valid share + 0.2·(1 − late share) + 0.1·(1 − min(alerts/10, 1)).
    pub health_score: f64,
    /// 1 − health_score · uptime_share.
    pub failure_probability: f64,
    /// uptime_share · valid share · received / (received + sequence gaps + quarantined).
    pub data_reliability: f64,
    /// Reading times received / expected from the device's cadence, at most 1.
    pub uptime_share: f64,
    /// Mean quality score of its readings.
    pub quality_score: f64,
    pub valid_share: f64,
    pub late_share: f64,
    pub readings: i64,
    pub invalid_readings: i64,
    pub late_readings: i64,
    /// Extra copies received (broker duplicates, replays), counted once.
    pub duplicates: i64,
    pub alerts: i64,
    pub sequence_gaps: i64,
    pub offline_events: i64,
    pub quarantined: i64,
    /// Median seconds between its readings.
    pub cadence_s: Option<f64>,
    pub first_reading: Option<DateTime<Utc>>,
    pub last_reading: Option<DateTime<Utc>>,
}

/// Seed 002's KPIs for one day.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DailySummary {
    pub date: NaiveDate,
    pub total_kwh: f64,
    pub total_cost: f64,
    /// Devices with at least one valid reading.
    pub active_devices: i64,
    /// Devices with any reading.
    pub reporting_devices: i64,
    pub avg_health: Option<f64>,
    pub readings: i64,
    pub invalid_readings: i64,
    pub late_readings: i64,
    pub duplicates: i64,
    pub alerts: i64,
}

/// Column access by name, tolerant of integer widths.
struct Row<'a> {
    batch: &'a RecordBatch,
    i: usize,
    key: &'a str,
}

impl Row<'_> {
    fn column(&self, name: &str) -> Result<&dyn Array, GoldError> {
        self.batch
            .column_by_name(name)
            .map(|c| c.as_ref())
            .ok_or_else(|| GoldError::File {
                key: self.key.to_owned(),
                error: format!("no column {name}"),
            })
    }

    fn text(&self, name: &str) -> Result<Option<String>, GoldError> {
        let column = self.column(name)?;
        if column.is_null(self.i) {
            return Ok(None);
        }
        let value = if let Some(s) = column.as_string_opt::<i32>() {
            s.value(self.i).to_owned()
        } else if let Some(s) = column.as_string_view_opt() {
            s.value(self.i).to_owned()
        } else {
            return Err(self.wrong(name));
        };
        Ok(Some(value))
    }

    fn number(&self, name: &str) -> Result<Option<f64>, GoldError> {
        let column = self.column(name)?;
        if column.is_null(self.i) {
            return Ok(None);
        }
        column
            .as_primitive_opt::<Float64Type>()
            .map(|c| c.value(self.i))
            .or_else(|| self.integer_of(column).map(|v| v as f64))
            .map(Some)
            .ok_or_else(|| self.wrong(name))
    }

    fn integer_of(&self, column: &dyn Array) -> Option<i64> {
        column
            .as_primitive_opt::<Int64Type>()
            .map(|c| c.value(self.i))
            .or_else(|| {
                column
                    .as_primitive_opt::<Int32Type>()
                    .map(|c| i64::from(c.value(self.i)))
            })
    }

    fn integer(&self, name: &str) -> Result<i64, GoldError> {
        let column = self.column(name)?;
        if column.is_null(self.i) {
            return Ok(0);
        }
        self.integer_of(column).ok_or_else(|| self.wrong(name))
    }

    fn float(&self, name: &str) -> Result<f64, GoldError> {
        Ok(self.number(name)?.unwrap_or(0.0))
    }

    fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>, GoldError> {
        let column = self.column(name)?;
        if column.is_null(self.i) {
            return Ok(None);
        }
        let micros = column
            .as_primitive_opt::<TimestampMicrosecondType>()
            .map(|c| c.value(self.i))
            .ok_or_else(|| self.wrong(name))?;
        Ok(DateTime::from_timestamp_micros(micros))
    }

    fn wrong(&self, name: &str) -> GoldError {
        GoldError::File {
            key: self.key.to_owned(),
            error: format!("column {name} has an unexpected type"),
        }
    }
}

/// Each row of one gold file, made by `row`; no file, no rows.
async fn read<T>(
    objects: &ObjectStore,
    model: &str,
    date: NaiveDate,
    row: impl Fn(&Row<'_>, NaiveDate) -> Result<T, GoldError>,
) -> Result<Vec<T>, GoldError> {
    let key = key(model, date);
    let Some(bytes) = objects.get(&key).await? else {
        return Ok(Vec::new());
    };
    let broken = |e: parquet::errors::ParquetError| GoldError::File {
        key: key.clone(),
        error: e.to_string(),
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
        .and_then(|b| b.build())
        .map_err(broken)?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| GoldError::File {
            key: key.clone(),
            error: e.to_string(),
        })?;
        for i in 0..batch.num_rows() {
            out.push(row(
                &Row {
                    batch: &batch,
                    i,
                    key: &key,
                },
                date,
            )?);
        }
    }
    Ok(out)
}

/// The days of `[from, to]` that `model` has a file for, oldest first: one listing, so a wide
/// range costs only the days the lake has.
async fn days_with(
    objects: &ObjectStore,
    model: &str,
    (from, to): (NaiveDate, NaiveDate),
) -> Result<Vec<NaiveDate>, GoldError> {
    let folders = objects.folders(&format!("{GOLD_PREFIX}/{model}/")).await?;
    let mut days: Vec<NaiveDate> = folders
        .iter()
        .filter_map(|f| super::partition_date(f))
        .filter(|d| (from..=to).contains(d))
        .collect();
    days.sort_unstable();
    Ok(days)
}

/// The rows of `model` for the days of `[from, to]`, oldest day first.
async fn read_days<T: Send>(
    objects: &ObjectStore,
    model: &str,
    range: (NaiveDate, NaiveDate),
    row: impl Fn(&Row<'_>, NaiveDate) -> Result<T, GoldError> + Copy,
) -> Result<Vec<T>, GoldError> {
    let days = days_with(objects, model, range).await?;
    let per_day: Vec<Result<Vec<T>, GoldError>> = futures_util::stream::iter(days)
        .map(|day| read(objects, model, day, row))
        .buffered(FETCHES)
        .collect()
        .await;
    let mut out = Vec::new();
    for day in per_day {
        out.extend(day?);
    }
    Ok(out)
}

/// Daily energy and cost over `[from, to]`, grouped as asked.
pub async fn energy(
    objects: &ObjectStore,
    group_by: GroupBy,
    days: (NaiveDate, NaiveDate),
) -> Result<Vec<DailyEnergy>, GoldError> {
    read_days(objects, group_by.model(), days, move |r, date| {
        let grouped = group_by != GroupBy::Device;
        Ok(DailyEnergy {
            date,
            device_id: if grouped { None } else { r.text("device_id")? },
            location: if group_by == GroupBy::Type {
                None
            } else {
                r.text("location")?
            },
            device_type: if group_by == GroupBy::Location {
                None
            } else {
                r.text("device_type")?
            },
            energy_kwh: r.float("energy_kwh")?,
            cost: r.float("cost")?,
            method: r.text("method")?.unwrap_or_default(),
            readings: r.integer("readings")?,
            devices: if grouped {
                Some(r.integer("devices")?)
            } else {
                None
            },
        })
    })
    .await
}

/// Each device's health on `date`.
pub async fn health(
    objects: &ObjectStore,
    date: NaiveDate,
) -> Result<Vec<DeviceHealth>, GoldError> {
    read(objects, "device_health", date, |r, date| {
        Ok(DeviceHealth {
            date,
            device_id: r.text("device_id")?.unwrap_or_default(),
            device_type: r.text("device_type")?,
            location: r.text("location")?,
            health_score: r.float("health_score")?,
            failure_probability: r.float("failure_probability")?,
            data_reliability: r.float("data_reliability")?,
            uptime_share: r.float("uptime_share")?,
            quality_score: r.float("quality_score")?,
            valid_share: r.float("valid_share")?,
            late_share: r.float("late_share")?,
            readings: r.integer("readings")?,
            invalid_readings: r.integer("invalid_readings")?,
            late_readings: r.integer("late_readings")?,
            duplicates: r.integer("duplicates")?,
            alerts: r.integer("alerts")?,
            sequence_gaps: r.integer("sequence_gaps")?,
            offline_events: r.integer("offline_events")?,
            quarantined: r.integer("quarantined")?,
            cadence_s: r.number("cadence_s")?,
            first_reading: r.time("first_reading")?,
            last_reading: r.time("last_reading")?,
        })
    })
    .await
}

/// Device health of the newest day up to `to` that has it.
pub async fn latest_health(
    objects: &ObjectStore,
    to: NaiveDate,
) -> Result<Vec<DeviceHealth>, GoldError> {
    let days = days_with(objects, "device_health", (NaiveDate::MIN, to)).await?;
    match days.last() {
        Some(&day) => health(objects, day).await,
        None => Ok(Vec::new()),
    }
}

/// The daily summaries over `[from, to]`.
pub async fn summary(
    objects: &ObjectStore,
    days: (NaiveDate, NaiveDate),
) -> Result<Vec<DailySummary>, GoldError> {
    read_days(objects, "daily_summary", days, |r, date| {
        Ok(DailySummary {
            date,
            total_kwh: r.float("total_kwh")?,
            total_cost: r.float("total_cost")?,
            active_devices: r.integer("active_devices")?,
            reporting_devices: r.integer("reporting_devices")?,
            avg_health: r.number("avg_health")?,
            readings: r.integer("readings")?,
            invalid_readings: r.integer("invalid_readings")?,
            late_readings: r.integer("late_readings")?,
            duplicates: r.integer("duplicates")?,
            alerts: r.integer("alerts")?,
        })
    })
    .await
}
