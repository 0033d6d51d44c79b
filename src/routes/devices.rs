use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use validator::Validate;

use super::{device_id, paged, Notice};
use crate::auth::{Admin, Operator, Viewer};
use crate::domain::{DeviceFilter, DeviceListQuery, DevicePatch, NewDevice};
use crate::error::{ApiError, ErrorBody};
use crate::registry::devices::{self, ConnectionState, Device};

/// Lists devices, newest first.
#[utoipa::path(get, operation_id = "list_devices", path = "/api/devices", tag = "devices", params(DeviceListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Device>),
        (status = 400, description = "Bad query parameter", body = ErrorBody),
    ))]
pub async fn list(
    req: HttpRequest,
    _: Viewer,
    pool: web::Data<PgPool>,
    query: web::Query<DeviceListQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = DeviceFilter::try_from(query.into_inner()).map_err(ApiError::invalid_parameter)?;
    Ok(paged(
        &req,
        filter.page,
        devices::list(&pool, &filter).await?,
    ))
}

/// Registers a device (admin).
#[utoipa::path(post, operation_id = "register_device", path = "/api/devices", tag = "devices", request_body = NewDevice,
    security(("bearer" = [])),
    responses(
        (status = 201, body = Device),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "The device id is taken", body = ErrorBody),
        (status = 422, description = "A field breaks a rule", body = ErrorBody),
    ))]
pub async fn register(
    _: Admin,
    pool: web::Data<PgPool>,
    body: super::Body<NewDevice>,
) -> Result<HttpResponse, ApiError> {
    body.validate()?;
    let new = body.into_inner().0;
    let id = new.id().map_err(ApiError::invalid_body)?;
    let device = devices::register(&pool, &id, new).await?;
    tracing::info!(device_id = %id, "device registered");
    Ok(HttpResponse::Created().json(device))
}

/// Reads one device.
#[utoipa::path(get, operation_id = "get_device", path = "/api/devices/{device_id}", tag = "devices",
    params(("device_id" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Device),
    ))]
pub async fn read(
    _: Viewer,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    Ok(HttpResponse::Ok().json(devices::find(&pool, &id).await?))
}

/// Changes the fields present in the body (admin).
#[utoipa::path(put, operation_id = "update_device", path = "/api/devices/{device_id}", tag = "devices",
    params(("device_id" = String, Path)), request_body = DevicePatch, security(("bearer" = [])),
    responses(
        (status = 200, body = Device),
        (status = 403, body = ErrorBody),
    ))]
pub async fn update(
    _: Admin,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
    body: super::Body<DevicePatch>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    body.validate()?;
    let patch = body.into_inner().0;
    if patch.is_empty() {
        return Err(ApiError::Validation(
            serde_json::json!({"body": ["give at least one field to change"]}),
        ));
    }
    Ok(HttpResponse::Ok().json(devices::update(&pool, &id, patch).await?))
}

/// Deletes a device with its configs, alerts and commands (admin).
#[utoipa::path(delete, operation_id = "delete_device", path = "/api/devices/{device_id}", tag = "devices",
    params(("device_id" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Notice),
        (status = 403, body = ErrorBody),
    ))]
pub async fn delete(
    caller: Admin,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    devices::delete(&pool, &id).await?;
    tracing::info!(device_id = %id, by = %caller.caller.username, "device deleted");
    Ok(HttpResponse::Ok().json(Notice {
        message: format!("device {id} deleted"),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct HeartbeatRecorded {
    pub message: &'static str,
    pub device_id: String,
    pub last_seen: DateTime<Utc>,
}

/// Records that the device is alive now: sets `last_seen` and marks it online (operator).
#[utoipa::path(post, operation_id = "device_heartbeat", path = "/api/devices/{device_id}/heartbeat", tag = "devices",
    params(("device_id" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = HeartbeatRecorded),
        (status = 403, body = ErrorBody),
    ))]
pub async fn heartbeat(
    _: Operator,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    let last_seen = devices::heartbeat(&pool, &id).await?;
    Ok(HttpResponse::Ok().json(HeartbeatRecorded {
        message: "heartbeat recorded",
        device_id: id.to_string(),
        last_seen,
    }))
}

/// Connection state: `online`/`offline`/`unknown`, last seen and firmware version.
#[utoipa::path(get, operation_id = "device_status", path = "/api/devices/{device_id}/status", tag = "devices",
    params(("device_id" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = ConnectionState),
    ))]
pub async fn status(
    _: Viewer,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    Ok(HttpResponse::Ok().json(devices::connection_state(&pool, &id).await?))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/devices").get(list).post(register))
        .service(
            web::resource("/devices/{device_id}")
                .get(read)
                .put(update)
                .delete(delete),
        )
        .service(web::resource("/devices/{device_id}/heartbeat").post(heartbeat))
        .service(web::resource("/devices/{device_id}/status").get(status));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, register, read, update, delete, heartbeat, status), tags((name = "devices", description = "The device registry")))]
pub struct Doc;
