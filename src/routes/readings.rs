use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};

use super::{device_id, ApiState};
use crate::auth::Viewer;
use crate::domain::{DeviceId, Downsample, MetricName, TimeRange};
use crate::error::{ApiError, ErrorBody};
use crate::registry::devices;
use crate::stores::influxdb::MEASUREMENT;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// `-5m`, `-1h` (default), `-7d`, or an RFC 3339 time.
    pub start: Option<String>,
    /// `now()` (default), a relative time, or an RFC 3339 time.
    pub stop: Option<String>,
    /// Only this metric (e.g. `voltage_dc`).
    pub metric: Option<String>,
    /// Downsampling interval, e.g. `1m`.
    pub every: Option<String>,
    /// Aggregate per interval: mean (default), min, max, sum, count, first, last, median.
    #[serde(rename = "fn")]
    #[param(rename = "fn")]
    pub function: Option<String>,
    /// Most points per series, 1–100000 (default 10000).
    pub limit: Option<u32>,
}

/// One point of a device's time series.
#[derive(Debug, Serialize, ToSchema)]
pub struct MetricPoint {
    pub time: DateTime<Utc>,
    pub device_id: String,
    pub metric: String,
    pub value: f64,
    pub unit: String,
}

/// What a metrics statement selects: the points (optionally downsampled, at most `limit` per
/// series), or how many there are per series.
#[derive(Debug, Clone, Copy)]
pub enum Select {
    Points {
        downsample: Option<Downsample>,
        limit: u32,
    },
    Count,
}

/// The one function that builds InfluxQL, from validated domain types only.
pub fn metrics_influxql(
    device: &DeviceId,
    metric: Option<&MetricName>,
    range: TimeRange,
    select: Select,
) -> String {
    // DeviceId and MetricName allow only [A-Za-z0-9._:-]: nothing in them can end a literal.
    let mut filter = format!("\"device_id\" = '{device}'");
    if let Some(metric) = metric {
        filter.push_str(&format!(" AND \"metric\" = '{metric}'"));
    }
    let time = format!(
        "time >= {} AND time <= {}",
        range.start.influxql(),
        range.stop.influxql()
    );
    match select {
        Select::Count => format!(
            "SELECT count(\"value\") AS \"value\" FROM \"{MEASUREMENT}\" WHERE {filter} AND {time} GROUP BY \"metric\", \"unit\""
        ),
        Select::Points {
            downsample: None,
            limit,
        } => format!(
            "SELECT \"value\" FROM \"{MEASUREMENT}\" WHERE {filter} AND {time} GROUP BY \"metric\", \"unit\" LIMIT {limit}"
        ),
        Select::Points {
            downsample: Some(d),
            limit,
        } => format!(
            "SELECT {}(\"value\") AS \"value\" FROM \"{MEASUREMENT}\" WHERE {filter} AND {time} \
             GROUP BY time({}s), \"metric\", \"unit\" fill(none) LIMIT {limit}",
            d.function.as_str(),
            d.every_secs
        ),
    }
}

/// The most points one metrics answer holds, over all its series.
pub const MAX_POINTS: u64 = 100_000;

/// The largest `limit` of a metrics query.
pub const MAX_LIMIT: u32 = 100_000;

/// How many points the query would answer with: per series, its count of raw points, at most
/// its buckets when downsampled, at most `limit`.
async fn points_to_answer(
    influx: &crate::stores::influxdb::InfluxClient,
    (device, metric, range): (&DeviceId, Option<&MetricName>, TimeRange),
    downsample: Option<Downsample>,
    limit: u32,
) -> Result<u64, ApiError> {
    let counts = influx
        .query(&metrics_influxql(device, metric, range, Select::Count))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "metrics count query failed");
            ApiError::Unavailable("influxdb")
        })?;
    let buckets = downsample.map(|d| range.seconds() / d.every_secs.max(1) + 1);
    Ok(counts
        .iter()
        .flat_map(|s| &s.values)
        .filter_map(|row| row.get(1).and_then(serde_json::Value::as_u64))
        .map(|count| count.min(buckets.unwrap_or(u64::MAX)).min(u64::from(limit)))
        .sum())
}

/// Time series of a device from InfluxDB, oldest first.
#[utoipa::path(get, operation_id = "device_metrics", path = "/api/devices/{device_id}/metrics", tag = "metrics",
    params(("device_id" = String, Path), MetricsQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<MetricPoint>),
        (status = 503, description = "InfluxDB is unreachable", body = ErrorBody),
    ))]
pub async fn read(
    _: Viewer,
    pool: web::Data<PgPool>,
    stores: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<MetricsQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    let q = query.into_inner();
    let range = TimeRange::parse(q.start.as_deref(), q.stop.as_deref())
        .map_err(ApiError::invalid_parameter)?;
    let metric = q
        .metric
        .as_deref()
        .map(MetricName::parse)
        .transpose()
        .map_err(ApiError::invalid_parameter)?;
    let downsample = Downsample::parse(q.every.as_deref(), q.function.as_deref())
        .map_err(ApiError::invalid_parameter)?;
    let limit = q.limit.unwrap_or(10_000);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_parameter(crate::domain::Invalid::new(
            "limit",
            "must be between 1 and 100000",
        )));
    }
    devices::ensure_exists(&pool, &id).await?;
    let what = (&id, metric.as_ref(), range);
    let points = points_to_answer(&stores.influx, what, downsample, limit).await?;
    if points > MAX_POINTS {
        return Err(ApiError::invalid_parameter(crate::domain::Invalid::new(
            "start",
            format!(
                "the query matches {points} points, more than the {MAX_POINTS} one answer holds: \
                 narrow start and stop, choose a metric, or downsample (every=1m&fn=mean)"
            ),
        )));
    }
    let select = Select::Points { downsample, limit };
    let statement = metrics_influxql(&id, metric.as_ref(), range, select);
    let series = stores.influx.query(&statement).await.map_err(|e| {
        tracing::warn!(error = %e, "metrics query failed");
        ApiError::Unavailable("influxdb")
    })?;
    let mut points = Vec::new();
    for s in series {
        let (Some(t), Some(v)) = (
            s.columns.iter().position(|c| c == "time"),
            s.columns.iter().position(|c| c == "value"),
        ) else {
            continue;
        };
        let metric = s.tags.get("metric").cloned().unwrap_or_default();
        let unit = s.tags.get("unit").cloned().unwrap_or_default();
        for row in s.values {
            let (Some(time), Some(value)) = (
                row.get(t).and_then(|x| x.as_i64()),
                row.get(v).and_then(|x| x.as_f64()),
            ) else {
                continue;
            };
            let Some(time) = DateTime::from_timestamp_millis(time) else {
                continue;
            };
            points.push(MetricPoint {
                time,
                device_id: id.to_string(),
                metric: metric.clone(),
                value,
                unit: unit.clone(),
            });
        }
    }
    points.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.metric.cmp(&b.metric)));
    Ok(HttpResponse::Ok().json(points))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/devices/{device_id}/metrics").get(read));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(read), tags((name = "metrics", description = "Time series from InfluxDB")))]
pub struct Doc;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Aggregate, TimeBound};

    #[test]
    fn influxql_is_built_from_validated_parts() {
        let device = DeviceId::parse("meter-1").unwrap();
        let metric = MetricName::parse("voltage_dc").unwrap();
        let range = TimeRange {
            start: TimeBound::Ago(300),
            stop: TimeBound::Now,
        };
        let points = |downsample, limit| Select::Points { downsample, limit };
        assert_eq!(
            metrics_influxql(&device, Some(&metric), range, points(None, 100)),
            "SELECT \"value\" FROM \"iot_telemetry\" WHERE \"device_id\" = 'meter-1' AND \"metric\" = 'voltage_dc' \
             AND time >= now() - 300s AND time <= now() GROUP BY \"metric\", \"unit\" LIMIT 100"
        );
        let q = metrics_influxql(
            &device,
            None,
            range,
            points(
                Some(Downsample {
                    every_secs: 60,
                    function: Aggregate::Max,
                }),
                10,
            ),
        );
        assert!(q.starts_with("SELECT max(\"value\") AS \"value\""));
        assert!(q.contains("GROUP BY time(60s), \"metric\", \"unit\" fill(none)"));
        let count = metrics_influxql(&device, None, range, Select::Count);
        assert!(
            count.starts_with("SELECT count(\"value\") AS \"value\""),
            "{count}"
        );
        assert!(count.ends_with("GROUP BY \"metric\", \"unit\""), "{count}");
    }
}
