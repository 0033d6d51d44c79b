use std::future::Future;
use std::time::Duration;

use actix_web::{web, HttpResponse};

use crate::auth::Viewer;
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct HealthStatus {
    /// `healthy`, `alive` or `ready`; `not_ready` with 503.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The failing dependencies and why, with 503.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

impl HealthStatus {
    fn ok(status: &'static str) -> Self {
        Self {
            status,
            error: None,
            details: None,
        }
    }
}

/// Liveness (seed 004 shape).
#[utoipa::path(get, operation_id = "health", path = "/health", tag = "health",
    responses((status = 200, body = HealthStatus, example = json!({"status": "healthy"}))))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatus::ok("healthy"))
}

/// Liveness for orchestrators: the process answers.
#[utoipa::path(get, operation_id = "healthz", path = "/healthz", tag = "health",
    responses((status = 200, body = HealthStatus, example = json!({"status": "alive"}))))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthStatus::ok("alive"))
}

/// Readiness: PostgreSQL, the MQTT broker, InfluxDB and the archive all answer, and no sink's
/// store refuses devicehub. 503 names each failing dependency; with a bearer token (any role)
/// `details` also says why.
#[utoipa::path(get, operation_id = "readyz", path = "/readyz", tag = "health",
    responses(
        (status = 200, body = HealthStatus, example = json!({"status": "ready"})),
        (status = 503, body = HealthStatus, example = json!({
            "status": "not_ready", "error": "database unavailable",
            "details": {"database": "pool timed out while waiting for an open connection"}})),
    ))]
pub async fn readyz(
    caller: Option<Viewer>,
    pool: web::Data<PgPool>,
    stores: web::Data<super::Probes>,
) -> HttpResponse {
    let database = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool.get_ref());
    let (database, influx, archive) = tokio::join!(
        probe(database),
        probe(stores.influx.check()),
        probe(stores.archive.check()),
    );
    let broker = (!stores.publisher.is_connected()).then(|| "not connected".to_owned());
    let mut failing: serde_json::Map<String, serde_json::Value> = [
        ("database", database),
        ("broker", broker),
        ("influxdb", influx),
        ("archive", archive),
    ]
    .into_iter()
    .filter_map(|(name, failure)| failure.map(|f| (name.to_owned(), serde_json::Value::from(f))))
    .collect();
    // A store that answers but refuses devicehub's writes (credentials, a missing bucket).
    for (sink, reason) in stores.health.failing_sinks() {
        failing.insert(format!("{sink} sink"), reason.into());
    }
    if failing.is_empty() {
        return HttpResponse::Ok().json(HealthStatus::ok("ready"));
    }
    let names: Vec<&str> = failing.keys().map(String::as_str).collect();
    let error = Some(format!("{} unavailable", names.join(", ")));
    // What a dependency said (hosts, database and bucket names) only to a signed-in caller:
    // probes and passers-by learn which dependency fails, not how.
    let details = caller.map(|_| serde_json::Value::Object(failing));
    HttpResponse::ServiceUnavailable().json(HealthStatus {
        status: "not_ready",
        error,
        details,
    })
}

/// Why a dependency check failed, or `None` when it answered in time.
async fn probe<T, E: std::fmt::Display>(
    check: impl Future<Output = Result<T, E>>,
) -> Option<String> {
    const LIMIT: Duration = Duration::from_secs(2);
    match tokio::time::timeout(LIMIT, check).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", LIMIT.as_secs())),
    }
}

/// This module's routes, at the root: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").get(health))
        .service(web::resource("/healthz").get(healthz))
        .service(web::resource("/readyz").get(readyz));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(health, healthz, readyz), tags((name = "health", description = "Liveness and readiness")))]
pub struct Doc;
