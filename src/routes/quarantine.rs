use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::IntoParams;

use super::paged;
use crate::auth::Viewer;
use crate::domain::{DeviceId, Invalid, Page};
use crate::error::ApiError;
use crate::registry::quarantine::{self, QuarantineFilter, Quarantined};
use crate::sinks;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QuarantineQuery {
    /// Only records of this sink (the collector's sinks, listed in the document's enum).
    pub sink: Option<String>,
    pub device_id: Option<String>,
    /// 1–1000, default 100.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

/// Records a store refused for good, newest first: the sink passed them over and kept them here
/// with the store's reason (each also raised a `sink_rejected` alert on its device).
#[utoipa::path(get, operation_id = "list_quarantine", path = "/api/quarantine", tag = "quarantine",
    params(QuarantineQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Quarantined>),
    ))]
pub async fn list(
    req: HttpRequest,
    _: Viewer,
    pool: web::Data<PgPool>,
    query: web::Query<QuarantineQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    if let Some(sink) = q.sink.as_deref().filter(|s| !sinks::NAMES.contains(s)) {
        return Err(ApiError::invalid_parameter(Invalid::new(
            "sink",
            format!("{sink:?} is none of {}", sinks::NAMES.join(", ")),
        )));
    }
    let device_id = q
        .device_id
        .as_deref()
        .map(DeviceId::parse)
        .transpose()
        .map_err(ApiError::invalid_parameter)?;
    let filter = QuarantineFilter {
        sink: q.sink,
        device_id: device_id.map(|d| d.as_str().to_owned()),
        page: Page::parse(q.limit, q.offset).map_err(ApiError::invalid_parameter)?,
    };
    let page = filter.page;
    Ok(paged(&req, page, quarantine::list(&pool, &filter).await?))
}

/// One quarantined record.
#[utoipa::path(get, operation_id = "get_quarantined", path = "/api/quarantine/{id}", tag = "quarantine",
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Quarantined),
    ))]
pub async fn read(
    _: Viewer,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(quarantine::find(&pool, path.into_inner()).await?))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/quarantine").get(list))
        .service(web::resource("/quarantine/{id}").get(read));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, read), tags((name = "quarantine", description = "Records a store refused for good")))]
pub struct Doc;
