use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::Probes;
use crate::error::ApiError;
use crate::metrics::{Fleet, Metrics};
use crate::registry::stats;

/// How often the fleet gauges are read from the registry. A scrape reads none: a loop of
/// scrapes (the endpoint is unauthenticated, like every exporter) costs no query.
pub const FLEET_EVERY: Duration = Duration::from_secs(15);

/// Devices, alerts, the collector's, sinks' and the API's counters in the Prometheus/OpenMetrics
/// text format, served by every process whatever its roles: open, like most exporters (it
/// carries no device data beyond counts), unless `metrics.token` is set, when a scrape must
/// send it as a bearer token (401 otherwise). The fleet gauges are as of the last
/// refresh (at most 15 s old); a scrape runs no query.
#[utoipa::path(get, operation_id = "prometheus_metrics", path = "/metrics", tag = "health",
    responses((status = 200, description = "OpenMetrics text exposition format", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 401, description = "`metrics.token` is set and the request did not send it as `Authorization: Bearer`", body = crate::routes::Notice)))]
pub async fn metrics(
    stores: web::Data<Probes>,
    request: actix_web::HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = &stores.metrics_token {
        use sha2::Digest;
        let presented = request
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Compared as digests: the time taken says nothing about the token's bytes.
        let digest: [u8; 32] = sha2::Sha256::digest(presented.as_bytes()).into();
        if digest != *expected {
            return Err(ApiError::Unauthorized(
                "metrics.token is set: send it as a bearer token",
            ));
        }
    }
    stores
        .metrics
        .mqtt
        .connected("publisher", stores.publisher.is_connected());
    Ok(match stores.metrics.encode() {
        Ok(text) => HttpResponse::Ok()
            .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .body(text),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics");
            HttpResponse::InternalServerError().finish()
        }
    })
}

/// Reads the fleet gauges from the registry now and every [`FLEET_EVERY`] until `shutdown`.
/// Without the registry they keep their last values; the counters still answer.
pub async fn refresh_fleet(
    pool: PgPool,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(FLEET_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return Ok(()),
        }
        let (fleet, breakdown) = tokio::join!(stats::read(&pool), stats::breakdown(&pool));
        let (Ok(fleet), Ok(breakdown)) = (fleet, breakdown) else {
            continue;
        };
        let by_status: Vec<(String, i64)> = fleet
            .device_by_status
            .iter()
            .map(|s| (s.status.clone(), s.count))
            .collect();
        metrics.set_fleet(Fleet {
            by_status: &by_status,
            online: fleet.online_devices,
            open_alerts: fleet.unacknowledged_alerts,
            by_connection: &breakdown.by_connection,
            open_by_severity: &breakdown.open_by_severity,
        });
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
