use actix_web::{web, HttpResponse};
use sqlx::PgPool;

use super::Stores;
use crate::metrics::Fleet;

/// Devices, alerts and the collector's counters in the Prometheus/OpenMetrics text format
/// (unauthenticated, like every exporter; it carries no device data beyond counts).
#[utoipa::path(get, operation_id = "prometheus_metrics", path = "/metrics", tag = "health",
    responses((status = 200, description = "OpenMetrics text exposition format", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn metrics(pool: web::Data<PgPool>, stores: web::Data<Stores>) -> HttpResponse {
    // Without the registry the fleet gauges keep their last values; the counters still answer.
    let fleet = crate::registry::stats::read(&pool).await.ok();
    let by_status: Vec<(String, i64)> = fleet
        .iter()
        .flat_map(|f| &f.device_by_status)
        .map(|s| (s.status.clone(), s.count))
        .collect();
    let fleet = fleet.as_ref().map(|f| Fleet {
        by_status: &by_status,
        online: f.online_devices,
        open_alerts: f.unacknowledged_alerts,
    });
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
