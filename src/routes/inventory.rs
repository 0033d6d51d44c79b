//! `GET /api/inventory` and `GET /api/inventory/{mac}`: the DuckDB inventory
//! ([`crate::inventory::store`]), with the registered device of each MAC joined from the
//! registry.

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::IntoParams;

use super::ApiState;
use crate::auth::Viewer;
use crate::domain::Invalid;
use crate::domain::Mac;
use crate::error::{ApiError, ErrorBody};
use crate::inventory::{Host, HostFilter, HostHistory, Inventory, InventoryError};
use crate::registry::devices;

/// The longest `location` or `owner` filter.
pub const MAX_FILTER_CHARS: usize = 200;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InventoryQuery {
    /// Device type from the metadata file, or `unknown`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub device_type: Option<String>,
    pub location: Option<String>,
    pub owner: Option<String>,
    /// `true`: in the metadata file; `false`: unknown hosts only.
    pub known: Option<bool>,
    /// `true`: on Wi-Fi now; `false`: not.
    pub present: Option<bool>,
}

/// A text filter: 1 to `max` characters on one line.
fn text_filter(
    field: &'static str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) => {
            Err(ApiError::invalid_parameter(Invalid::new(
                field,
                format!("1 to {max} characters, no control characters"),
            )))
        }
        v => Ok(v),
    }
}

fn unavailable(e: InventoryError) -> ApiError {
    tracing::warn!(error = %e, "the inventory cannot answer");
    ApiError::Unavailable("inventory")
}

/// Brings the inventory up to date; a lake that cannot be read leaves it as it was.
async fn fresh(inventory: &Inventory) -> Result<(), ApiError> {
    match inventory.sync_if_stale().await {
        Ok(()) => Ok(()),
        Err(InventoryError::Lake(e)) => {
            tracing::warn!(error = %e, "cannot read new snapshots from the lake; answering from those loaded");
            Ok(())
        }
        Err(e) => Err(unavailable(e)),
    }
}

/// The registered devices of these hosts, by MAC.
async fn with_devices(pool: &PgPool, hosts: &mut [Host]) -> Result<(), ApiError> {
    if hosts.is_empty() {
        return Ok(());
    }
    let by_mac: HashMap<Mac, String> = devices::ids_by_mac(pool)
        .await?
        .into_iter()
        .filter_map(|(id, mac)| Some((Mac::parse(&mac)?, id)))
        .collect();
    for host in hosts {
        host.device_id = Mac::parse(&host.mac).and_then(|m| by_mac.get(&m).cloned());
    }
    Ok(())
}

/// What is on the network: every host of the router's newest lease and Wi-Fi snapshots, with
/// the device metadata joined, by MAC.
#[utoipa::path(get, operation_id = "list_inventory", path = "/api/inventory", tag = "inventory",
    params(InventoryQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<Host>),
        (status = 503, body = ErrorBody),
    ))]
pub async fn list(
    _: Viewer,
    pool: web::Data<PgPool>,
    stores: web::Data<ApiState>,
    query: web::Query<InventoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let filter = HostFilter {
        device_type: text_filter("type", q.device_type, crate::domain::MAX_DEVICE_TYPE_CHARS)?,
        location: text_filter("location", q.location, MAX_FILTER_CHARS)?,
        owner: text_filter("owner", q.owner, MAX_FILTER_CHARS)?,
        known: q.known,
        present: q.present,
    };
    fresh(&stores.inventory).await?;
    let mut hosts = stores.inventory.hosts(filter).await.map_err(unavailable)?;
    with_devices(&pool, &mut hosts).await?;
    Ok(HttpResponse::Ok().json(hosts))
}

/// One host, with the addresses it had and when it was on Wi-Fi, over the history kept
/// (`inventory.history_days`).
#[utoipa::path(get, operation_id = "read_inventory_host", path = "/api/inventory/{mac}", tag = "inventory",
    params(("mac" = String, Path, description = "A MAC address, in any case, with `:`, `-`, `.` or no separators")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = HostHistory),
        (status = 503, body = ErrorBody),
    ))]
pub async fn read(
    _: Viewer,
    pool: web::Data<PgPool>,
    stores: web::Data<ApiState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mac = Mac::parse_exact(&path).ok_or_else(|| {
        ApiError::invalid_parameter(Invalid::new("mac", "must be a MAC address (12 hex digits)"))
    })?;
    fresh(&stores.inventory).await?;
    let mut host = stores
        .inventory
        .host(mac)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::NotFound {
            what: "host",
            details: serde_json::json!({"mac": mac.to_string()}),
        })?;
    with_devices(&pool, std::slice::from_mut(&mut host.host)).await?;
    Ok(HttpResponse::Ok().json(host))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/inventory").get(list))
        .service(web::resource("/inventory/{mac}").get(read));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, read), tags((name = "inventory", description = "What is on the home network (DuckDB over the router's snapshots)")))]
pub struct Doc;
