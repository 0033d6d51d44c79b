use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::IntoParams;

use super::{device_id, paged};
use crate::auth::Viewer;
use crate::domain::{single_line, Invalid, Page};
use crate::error::ApiError;
use crate::registry::events::{self, Event};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events of this type.
    pub event_type: Option<String>,
    /// 1–1000, default 100.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

/// Stored `qs/v1` events of a device, newest first.
#[utoipa::path(get, operation_id = "list_device_events", path = "/api/devices/{device_id}/events", tag = "events",
    params(("device_id" = String, Path), EventQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Event>),
    ))]
pub async fn list(
    req: HttpRequest,
    _: Viewer,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    query: web::Query<EventQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    let query = query.into_inner();
    if query
        .event_type
        .as_ref()
        .is_some_and(|t| t.is_empty() || t.chars().count() > 128)
    {
        return Err(ApiError::invalid_parameter(Invalid::new(
            "event_type",
            "must be 1 to 128 characters long",
        )));
    }
    if let Some(t) = &query.event_type {
        single_line("event_type", t).map_err(ApiError::invalid_parameter)?;
    }
    let page = Page::parse(query.limit, query.offset).map_err(ApiError::invalid_parameter)?;
    let events = events::list(&pool, &id, query.event_type.as_deref(), page).await?;
    Ok(paged(&req, page, events))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/devices/{device_id}/events").get(list));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list), tags((name = "events", description = "qs/v1 events")))]
pub struct Doc;
