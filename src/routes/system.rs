//! `/api/system`: what this process runs (its roles and supervised tasks) and, on request, the
//! checks of `devicehub doctor` run from here with the service's own settings (admin).

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use crate::auth::Admin;
use crate::doctor::{Check, Report};
use crate::error::ErrorBody;

/// A supervised background task of this process.
#[derive(Debug, Serialize, ToSchema)]
pub struct Task {
    pub name: String,
    /// Times it was restarted after a failure or panic since the process started.
    pub restarts: u64,
}

/// This process: its version, roles and tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct SystemInfo {
    pub version: &'static str,
    /// The roles this process runs (`api`, `collector`, `pollers`, `analytics`).
    pub roles: Vec<&'static str>,
    pub tasks: Vec<Task>,
}

/// This process's version, roles and background tasks (admin).
#[utoipa::path(get, operation_id = "system_info", path = "/api/system", tag = "system",
    security(("bearer" = [])),
    responses(
        (status = 200, body = SystemInfo, example = json!({
            "version": "0.1.0", "roles": ["api", "collector"],
            "tasks": [{"name": "mqtt source", "restarts": 0}, {"name": "influxdb sink", "restarts": 1}]})),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
pub async fn info(_: Admin, state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok().json(SystemInfo {
        version: env!("CARGO_PKG_VERSION"),
        roles: state.settings.roles.iter().map(|r| r.as_str()).collect(),
        tasks: state
            .metrics
            .tasks
            .tasks()
            .into_iter()
            .map(|(name, restarts)| Task { name, restarts })
            .collect(),
    })
}

/// Runs the checks of `devicehub doctor` with the service's settings (admin): each configured
/// part tried as the service uses it, ok or what failed and the setting that fixes it. Takes up
/// to ten seconds; the answer is 200 whatever the checks found (`ok` says).
#[utoipa::path(get, operation_id = "system_checks", path = "/api/system/checks", tag = "system",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Report, example = json!({"ok": false, "checks": [
            {"name": "database", "status": "ok", "detail": "PostgreSQL 15.19 at postgres://devicehub@db/devicehub, all 24 migrations applied"},
            {"name": "influxdb", "status": "failed", "detail": "http://influxdb:8086: InfluxDB unreachable: error sending request",
             "fix": "is InfluxDB running at http://influxdb:8086? influxdb.url (DEVICEHUB__INFLUXDB__URL)"}]})),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ))]
pub async fn checks(_: Admin, state: web::Data<ApiState>) -> HttpResponse {
    let report = crate::doctor::run(&state.settings, std::env::vars().collect()).await;
    HttpResponse::Ok().json(report)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/system").get(info))
        .service(web::resource("/system/checks").get(checks));
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(info, checks),
    components(schemas(SystemInfo, Task, Report, Check, crate::doctor::Status)),
    tags((name = "system", description = "This process and the checks of `devicehub doctor`"))
)]
pub struct Doc;
