use actix_web::{web, HttpResponse};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::IntoParams;

use super::{device_id, ApiState};
use crate::auth::Viewer;
use crate::domain::Invalid;
use crate::error::{ApiError, ErrorBody};
use crate::registry::devices;
use crate::stores::objects::{content_type, ArchiveObject};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RawDataQuery {
    /// 1–1000, default 100.
    pub limit: Option<usize>,
    /// Only objects whose name below the device's folder starts with this, e.g. `date=2026-02-12`.
    pub prefix: Option<String>,
}

/// A name below a device's folder: at most 512 of `[A-Za-z0-9=._/:-]`, no `.` or `..` segment.
pub(crate) fn is_safe_suffix(raw: &str) -> bool {
    raw.len() <= 512
        && raw.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'=' | b'.' | b'_' | b'-' | b'/' | b':')
        })
        && !raw.split('/').any(|part| part == ".." || part == ".")
}

fn safe_suffix(field: &'static str, raw: &str) -> Result<(), ApiError> {
    if is_safe_suffix(raw) {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(Invalid::new(
            field,
            "may contain only letters, digits and = . _ - / :, and no . or .. segments",
        )))
    }
}

/// Archive objects of a device, newest first.
#[utoipa::path(get, operation_id = "list_raw_data", path = "/api/devices/{device_id}/raw-data", tag = "archive",
    params(("device_id" = String, Path), RawDataQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<ArchiveObject>),
        (status = 503, body = ErrorBody),
    ))]
pub async fn list(
    _: Viewer,
    pool: web::Data<PgPool>,
    stores: web::Data<ApiState>,
    path: web::Path<String>,
    query: web::Query<RawDataQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_parameter(Invalid::new(
            "limit",
            "must be between 1 and 1000",
        )));
    }
    let mut prefix = format!("{id}/");
    if let Some(p) = q.prefix.as_deref() {
        safe_suffix("prefix", p)?;
        prefix.push_str(p.trim_start_matches('/'));
    }
    devices::ensure_exists(&pool, &id).await?;
    let mut objects = stores.archive.list(&prefix, limit).await.map_err(|e| {
        tracing::warn!(error = %e, "archive listing failed");
        ApiError::Unavailable("archive")
    })?;
    // A device's raw objects are its `date=` partitions; anything else below its folder (the
    // lake's `lake/readings/`, for a device called `lake`) is not its raw data.
    let own = format!("{id}/date=");
    objects.retain(|o| o.filename.starts_with(&own));
    Ok(HttpResponse::Ok().json(objects))
}

/// One archive object of the device, as stored (a JSON array of received messages).
#[utoipa::path(get, operation_id = "get_raw_data", path = "/api/devices/{device_id}/raw-data/{object}", tag = "archive",
    params(("device_id" = String, Path), ("object" = String, Path, description = "The object name below the device's folder, or its full `filename` from the listing")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The object", content_type = "application/json"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn get(
    _: Viewer,
    stores: web::Data<ApiState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, object) = path.into_inner();
    let id = device_id(&id)?;
    let own = format!("{id}/");
    let suffix = object.strip_prefix(&own).unwrap_or(&object);
    safe_suffix("object", suffix)?;
    if !suffix.starts_with("date=") {
        return Err(ApiError::NotFound {
            what: "archive object",
            details: serde_json::json!({"filename": format!("{own}{suffix}")}),
        });
    }
    let key = format!("{own}{suffix}");
    let bytes = stores.archive.get(&key).await.map_err(|e| {
        tracing::warn!(error = %e, "archive read failed");
        ApiError::Unavailable("archive")
    })?;
    let bytes = bytes.ok_or_else(|| ApiError::NotFound {
        what: "archive object",
        details: serde_json::json!({"filename": key}),
    })?;
    Ok(HttpResponse::Ok()
        .content_type(content_type(&key))
        .body(bytes))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/devices/{device_id}/raw-data").get(list))
        .service(web::resource("/devices/{device_id}/raw-data/{object:.+}").get(get));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, get), tags((name = "archive", description = "The raw archive")))]
pub struct Doc;
