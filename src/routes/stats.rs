use actix_web::{web, HttpResponse};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use crate::auth::Viewer;
use crate::error::{ApiError, ErrorBody};
use crate::metrics::IngestStats;
use crate::registry::stats::{self, StatusCount};

/// `GET /api/stats` (seed 004 fields first).
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    pub total_devices: i64,
    pub device_by_status: Vec<StatusCount>,
    pub unacknowledged_alerts: i64,
    /// Devices whose connection status is `online`.
    pub online_devices: i64,
    /// Stored `qs/v1` events.
    pub total_events: i64,
    /// Collector counters (messages, dead letters by reason, points written), when the collector
    /// runs in the process that answers.
    pub ingest: Option<IngestStats>,
}

/// Fleet counters: devices by status, online devices, open alerts, stored events, and the
/// collector's ingest counters when it runs in this process.
#[utoipa::path(get, operation_id = "get_stats", path = "/api/stats", tag = "stats", security(("bearer" = [])),
    responses((status = 200, body = Stats), (status = 401, body = ErrorBody)))]
pub async fn read(
    _: Viewer,
    pool: web::Data<PgPool>,
    stores: web::Data<super::ApiState>,
) -> Result<HttpResponse, ApiError> {
    let fleet = stats::read(&pool).await?;
    Ok(HttpResponse::Ok().json(Stats {
        total_devices: fleet.total_devices,
        device_by_status: fleet.device_by_status,
        unacknowledged_alerts: fleet.unacknowledged_alerts,
        online_devices: fleet.online_devices,
        total_events: fleet.total_events,
        ingest: stores.collector.then(|| stores.metrics.ingest_stats()),
    }))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/stats").get(read));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(read), tags((name = "stats", description = "Fleet counters")))]
pub struct Doc;
