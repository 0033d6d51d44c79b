use actix_web::{web, HttpRequest, HttpResponse};
use sqlx::PgPool;
use validator::Validate;

use super::{device_id, paged};
use crate::auth::{Operator, Viewer};
use crate::domain::{AlertQuery, NewAlert, Page};
use crate::error::{ApiError, ErrorBody};
use crate::registry::alerts::{self, Alert, AlertFilter};

fn filter(query: AlertQuery) -> Result<AlertFilter, ApiError> {
    Ok(AlertFilter {
        acknowledged: query.acknowledged,
        severity: query.severity,
        page: Page::parse(query.limit, query.offset).map_err(ApiError::invalid_parameter)?,
    })
}

/// Alerts of one device, newest first.
#[utoipa::path(get, operation_id = "list_device_alerts", path = "/api/devices/{device_id}/alerts", tag = "alerts",
    params(("device_id" = String, Path), AlertQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Alert>),
    ))]
pub async fn list_for_device(
    req: HttpRequest,
    _: Viewer,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    query: web::Query<AlertQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    let filter = filter(query.into_inner())?;
    let page = filter.page;
    Ok(paged(
        &req,
        page,
        alerts::list(&pool, Some(&id), filter).await?,
    ))
}

/// Raises an alert on a device (operator).
#[utoipa::path(post, operation_id = "raise_alert", path = "/api/devices/{device_id}/alerts", tag = "alerts",
    params(("device_id" = String, Path)), request_body = NewAlert, security(("bearer" = [])),
    responses(
        (status = 201, body = Alert),
        (status = 403, body = ErrorBody),
    ))]
pub async fn raise(
    _: Operator,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: super::Body<NewAlert>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    body.validate()?;
    Ok(HttpResponse::Created().json(alerts::raise(&pool, &id, body.into_inner().0).await?))
}

/// Alerts across all devices, newest first.
#[utoipa::path(get, operation_id = "list_alerts", path = "/api/alerts", tag = "alerts", params(AlertQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Alert>),
    ))]
pub async fn list(
    req: HttpRequest,
    _: Viewer,
    pool: web::Data<PgPool>,
    query: web::Query<AlertQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = filter(query.into_inner())?;
    let page = filter.page;
    Ok(paged(&req, page, alerts::list(&pool, None, filter).await?))
}

/// Acknowledges an alert (operator); acknowledging twice keeps the first acknowledgement.
#[utoipa::path(post, operation_id = "acknowledge_alert", path = "/api/alerts/{id}/acknowledge", tag = "alerts",
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Alert),
        (status = 403, body = ErrorBody),
    ))]
pub async fn acknowledge(
    caller: Operator,
    pool: web::Data<PgPool>,
    path: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let alert = alerts::acknowledge(&pool, path.into_inner(), &caller.caller.username).await?;
    Ok(HttpResponse::Ok().json(alert))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/devices/{device_id}/alerts")
            .get(list_for_device)
            .post(raise),
    )
    .service(web::resource("/alerts").get(list))
    .service(web::resource("/alerts/{id}/acknowledge").post(acknowledge));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_for_device, raise, list, acknowledge), tags((name = "alerts", description = "Alerts and acknowledgements")))]
pub struct Doc;
