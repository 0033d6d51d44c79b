//! `GET /api/analytics/...`: the gold tables of the analytics models ([`crate::analytics`]),
//! read from the lake: daily energy and cost, device health, the daily summary.

use actix_web::{web, HttpResponse};
use chrono::{NaiveDate, TimeDelta, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiState;
use crate::analytics::results::{
    self, DailyEnergy, DailySummary, DeviceHealth, GoldError, GroupBy,
};
use crate::auth::Viewer;
use crate::error::{ApiError, ErrorBody};

/// Days a range covers when `from` is left out.
const DEFAULT_DAYS: i64 = 30;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EnergyQuery {
    /// First day (UTC), `YYYY-MM-DD`; default 29 days before `to`.
    pub from: Option<NaiveDate>,
    /// Last day (UTC), `YYYY-MM-DD`; default today. Before `from`: no rows.
    pub to: Option<NaiveDate>,
    /// One row per day and device (default), location (room) or device type.
    pub group_by: Option<GroupBy>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// First day (UTC), `YYYY-MM-DD`; default 29 days before `to`.
    pub from: Option<NaiveDate>,
    /// Last day (UTC), `YYYY-MM-DD`; default today. Before `from`: no rows.
    pub to: Option<NaiveDate>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HealthQuery {
    /// The day (UTC), `YYYY-MM-DD`; default the newest day with health up to today.
    pub date: Option<NaiveDate>,
}

/// `[from, to]` from the query; `from` after `to` is an empty range (answered with no rows).
fn days(from: Option<NaiveDate>, to: Option<NaiveDate>) -> (NaiveDate, NaiveDate) {
    let to = to.unwrap_or_else(|| Utc::now().date_naive());
    let from = from.unwrap_or(to - TimeDelta::days(DEFAULT_DAYS - 1));
    (from, to)
}

fn unavailable(e: GoldError) -> ApiError {
    tracing::warn!(error = %e, "cannot read the analytics results");
    ApiError::Unavailable("analytics")
}

/// Daily energy (kWh) and cost per device, location or device type, from the gold tables the
/// `analytics` role builds (every `analytics.gold_every_s`); `method` says whether it came from
/// a counter, per-interval energy or integrated power.
#[utoipa::path(get, operation_id = "daily_energy", path = "/api/analytics/energy/daily", tag = "analytics",
    params(EnergyQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<DailyEnergy>),
        (status = 503, body = ErrorBody),
    ))]
pub async fn energy(
    _: Viewer,
    stores: web::Data<ApiState>,
    query: web::Query<EnergyQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let range = days(q.from, q.to);
    let rows = results::energy(&stores.archive, q.group_by.unwrap_or_default(), range)
        .await
        .map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(rows))
}

/// Each device's health on one day: seed 002's health score, failure probability and data
/// reliability, with the uptime, quality and the signals behind them.
#[utoipa::path(get, operation_id = "device_health", path = "/api/analytics/health", tag = "analytics",
    params(HealthQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<DeviceHealth>),
        (status = 503, body = ErrorBody),
    ))]
pub async fn health(
    _: Viewer,
    stores: web::Data<ApiState>,
    query: web::Query<HealthQuery>,
) -> Result<HttpResponse, ApiError> {
    let rows = match query.into_inner().date {
        Some(date) => results::health(&stores.archive, date).await,
        None => {
            let today = Utc::now().date_naive();
            results::latest_health(&stores.archive, today).await
        }
    }
    .map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(rows))
}

/// Seed 002's daily KPIs: total energy and cost, active devices, average health, and the day's
/// readings, invalid, late and duplicate ones, alerts.
#[utoipa::path(get, operation_id = "daily_summary", path = "/api/analytics/summary", tag = "analytics",
    params(DaysQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<DailySummary>),
        (status = 503, body = ErrorBody),
    ))]
pub async fn summary(
    _: Viewer,
    stores: web::Data<ApiState>,
    query: web::Query<DaysQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let range = days(q.from, q.to);
    let rows = results::summary(&stores.archive, range)
        .await
        .map_err(unavailable)?;
    Ok(HttpResponse::Ok().json(rows))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/analytics/energy/daily").get(energy))
        .service(web::resource("/analytics/health").get(health))
        .service(web::resource("/analytics/summary").get(summary));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(energy, health, summary), tags((name = "analytics", description = "Gold tables of the bronze/silver/gold models: energy, cost, health")))]
pub struct Doc;
