use std::time::Duration;

use actix_web::{web, HttpResponse};
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

/// Readiness: every backing store answers. 503 names the failing dependency.
#[utoipa::path(get, operation_id = "readyz", path = "/readyz", tag = "health",
    responses(
        (status = 200, body = HealthStatus, example = json!({"status": "ready"})),
        (status = 503, body = HealthStatus, example = json!({
            "status": "not_ready", "error": "database is unavailable",
            "details": {"database": "pool timed out while waiting for an open connection"}})),
    ))]
pub async fn readyz(pool: web::Data<PgPool>) -> HttpResponse {
    let probe = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(pool.get_ref());
    let failure = match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer within 2 s".to_owned()),
    };
    match failure {
        None => HttpResponse::Ok().json(HealthStatus::ok("ready")),
        Some(reason) => HttpResponse::ServiceUnavailable().json(HealthStatus {
            status: "not_ready",
            error: Some("database is unavailable".into()),
            details: Some(serde_json::json!({ "database": reason })),
        }),
    }
}
