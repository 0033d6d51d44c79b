//! `GET /api/devices/{device_id}/snapshot`: a camera's current picture, fetched from it over
//! ISAPI and kept in the archive (`snapshots/{device_id}/date=YYYY-MM-DD/{time}.jpg`).

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};
use chrono::Utc;
use sqlx::PgPool;

use super::{device_id, ApiState};
use crate::auth::Viewer;
use crate::error::{ApiError, ErrorBody};
use crate::registry::devices;

/// A camera's current picture, as a JPEG; also stored in the archive, under the key in the
/// `X-Archive-Key` header.
#[utoipa::path(get, operation_id = "device_snapshot", path = "/api/devices/{device_id}/snapshot", tag = "devices",
    params(("device_id" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, description = "The camera's picture", content_type = "image/jpeg",
         headers(("X-Archive-Key" = String, description = "Where the archive keeps it, when it could"))),
        (status = 404, body = ErrorBody, description = "No such device"),
        (status = 409, body = ErrorBody, description = "The device is not a camera devicehub reaches"),
        (status = 502, body = ErrorBody, description = "The camera did not answer with a picture"),
    ))]
pub async fn snapshot(
    _: Viewer,
    pool: web::Data<PgPool>,
    stores: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    let device = devices::find(&pool, &id).await?;
    let host = (device.device_type.as_deref() == Some("camera")
        && device.metadata["vendor"] == "hikvision")
        .then(|| device.metadata["http"].as_str())
        .flatten()
        .ok_or_else(|| {
            ApiError::Conflict(format!(
                "device {id} is not a HikVision camera devicehub reaches (type camera, vendor \
                 hikvision, registered from its device info)"
            ))
        })?;
    let jpeg = stores.cameras.snapshot(host).await.map_err(|e| {
        tracing::warn!(error = %e, device_id = %id, "no snapshot");
        ApiError::BadGateway(e.to_string())
    })?;
    let now = Utc::now();
    let key = format!(
        "snapshots/{id}/date={}/{}.jpg",
        now.format("%Y-%m-%d"),
        now.format("%Y%m%dT%H%M%S%.3fZ")
    );
    let mut response = HttpResponse::Ok();
    response
        .content_type("image/jpeg")
        .insert_header(CacheControl(vec![CacheDirective::NoStore]));
    match stores.archive.put(&key, jpeg.clone()).await {
        Ok(()) => {
            response.insert_header(("X-Archive-Key", key));
        }
        Err(e) => tracing::warn!(error = %e, "the snapshot is not archived"),
    }
    Ok(response.body(jpeg))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/devices/{device_id}/snapshot").get(snapshot));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(snapshot))]
pub struct Doc;
