use actix_web::{web, HttpResponse};
use sqlx::PgPool;

use super::Probes;
use crate::metrics::Fleet;
use crate::registry::stats;

/// Devices, alerts, the collector's, sinks' and the API's counters in the Prometheus/OpenMetrics text
/// format, served by every process whatever its roles (unauthenticated, like every exporter; it carries no device data beyond counts).
#[utoipa::path(get, operation_id = "prometheus_metrics", path = "/metrics", tag = "health",
    responses((status = 200, description = "OpenMetrics text exposition format", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn metrics(pool: web::Data<PgPool>, stores: web::Data<Probes>) -> HttpResponse {
    // Without the registry the fleet gauges keep their last values; the counters still answer.
    let (fleet, breakdown) = tokio::join!(stats::read(&pool), stats::breakdown(&pool));
    let (fleet, breakdown) = (fleet.ok(), breakdown.unwrap_or_default());
    let by_status: Vec<(String, i64)> = fleet
        .iter()
        .flat_map(|f| &f.device_by_status)
        .map(|s| (s.status.clone(), s.count))
        .collect();
    let fleet = fleet.as_ref().map(|f| Fleet {
        by_status: &by_status,
        online: f.online_devices,
        open_alerts: f.unacknowledged_alerts,
        by_connection: &breakdown.by_connection,
        open_by_severity: &breakdown.open_by_severity,
    });
    stores
        .metrics
        .mqtt
        .connected("publisher", stores.publisher.is_connected());
    match stores.metrics.encode(fleet) {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// This module's routes, at the root: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").get(metrics));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(metrics))]
pub struct Doc;
