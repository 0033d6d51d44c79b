use actix_web::{web, HttpResponse};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::{device_id, Notice};
use crate::auth::{Operator, Viewer};
use crate::domain::{bounded_json_value, ConfigKey};
use crate::error::{ApiError, ErrorBody};
use crate::registry::configs::{self, ConfigEntry};

/// Largest serialized config value.
pub const MAX_CONFIG_VALUE_BYTES: usize = 16 * 1024;

/// `PUT /api/devices/{device_id}/configs/{key}` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"value": 30}))]
pub struct ConfigValue {
    /// Any JSON value of at most 16 KiB.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
}

fn config_key(raw: &str) -> Result<ConfigKey, ApiError> {
    ConfigKey::parse(raw).map_err(ApiError::invalid_parameter)
}

/// All configuration pairs of a device, by key.
#[utoipa::path(get, operation_id = "list_device_configs", path = "/api/devices/{device_id}/configs", tag = "configs",
    params(("device_id" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<ConfigEntry>),
    ))]
pub async fn list(
    _: Viewer,
    pool: web::Data<PgPool>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = device_id(&path)?;
    Ok(HttpResponse::Ok().json(configs::list(&pool, &id).await?))
}

/// Sets one configuration value, creating or replacing it (operator).
#[utoipa::path(put, operation_id = "set_device_config", path = "/api/devices/{device_id}/configs/{key}", tag = "configs",
    params(("device_id" = String, Path), ("key" = String, Path, description = "1–64 of [A-Za-z0-9._-]")),
    request_body = ConfigValue, security(("bearer" = [])),
    responses(
        (status = 200, body = ConfigEntry),
        (status = 403, body = ErrorBody),
    ))]
pub async fn set(
    _: Operator,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
    body: super::Body<ConfigValue>,
) -> Result<HttpResponse, ApiError> {
    let (id, key) = path.into_inner();
    let (id, key) = (device_id(&id)?, config_key(&key)?);
    let value = bounded_json_value("value", body.into_inner().0.value, MAX_CONFIG_VALUE_BYTES)
        .map_err(ApiError::invalid_body)?;
    key.check_value(&value).map_err(ApiError::invalid_body)?;
    Ok(HttpResponse::Ok().json(configs::set(&pool, &id, &key, value).await?))
}

/// Removes one configuration value (operator).
#[utoipa::path(delete, operation_id = "delete_device_config", path = "/api/devices/{device_id}/configs/{key}", tag = "configs",
    params(("device_id" = String, Path), ("key" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Notice),
        (status = 403, body = ErrorBody),
        (status = 404, description = "No such device or key", body = ErrorBody),
    ))]
pub async fn delete(
    _: Operator,
    pool: web::Data<PgPool>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, key) = path.into_inner();
    let (id, key) = (device_id(&id)?, config_key(&key)?);
    configs::delete(&pool, &id, &key).await?;
    Ok(HttpResponse::Ok().json(Notice {
        message: format!("config {key} of device {id} deleted"),
    }))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/devices/{device_id}/configs").get(list))
        .service(
            web::resource("/devices/{device_id}/configs/{key}")
                .put(set)
                .delete(delete),
        );
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, set, delete), tags((name = "configs", description = "Per-device configuration")))]
pub struct Doc;
