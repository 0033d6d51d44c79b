use actix_web::{web, HttpResponse};
use sqlx::PgPool;

use crate::auth::Viewer;
use crate::error::{ApiError, ErrorBody};
use crate::registry::stats::{self, Stats};

/// Fleet counters: devices by status, online devices, open alerts, stored events.
#[utoipa::path(get, operation_id = "get_stats", path = "/api/stats", tag = "stats", security(("bearer" = [])),
    responses((status = 200, body = Stats), (status = 401, body = ErrorBody)))]
pub async fn read(_: Viewer, pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(stats::read(&pool).await?))
}
