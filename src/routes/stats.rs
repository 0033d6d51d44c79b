use actix_web::{web, HttpResponse};
use sqlx::PgPool;

use crate::auth::Viewer;
use crate::error::{ApiError, ErrorBody};
use crate::registry::stats::{self, Stats};

/// Fleet counters: devices by status, online devices, open alerts, stored events, and the
/// collector's ingest counters when it runs in this process.
#[utoipa::path(get, operation_id = "get_stats", path = "/api/stats", tag = "stats", security(("bearer" = [])),
    responses((status = 200, body = Stats), (status = 401, body = ErrorBody)))]
pub async fn read(
    _: Viewer,
    pool: web::Data<PgPool>,
    stores: web::Data<super::Stores>,
) -> Result<HttpResponse, ApiError> {
    let mut stats = stats::read(&pool).await?;
    stats.ingest = stores.ingest.as_ref().map(|c| c.snapshot());
    Ok(HttpResponse::Ok().json(stats))
}
