//! One file per resource; handlers parse input into domain types, call the registry and return
//! JSON. The least role each route needs is the type of its `Viewer`/`Operator`/`Admin` argument.
//! Each resource module registers its own routes (`routes`) and carries its part of the OpenAPI
//! document (`Doc`); [`ROOT`] and [`API`] list the modules, so a new resource is one file and one
//! line.

pub mod alerts;
pub mod analytics;
pub mod auth;
mod body;
pub mod cameras;
pub mod commands;
pub mod configs;
pub mod console;
pub mod devices;
pub mod events;
pub mod health;
pub mod inventory;
pub mod openapi;
mod openapi_rules;
pub mod prometheus;
pub mod quarantine;
pub mod raw_data;
pub mod readings;
pub mod stats;
pub mod stream;
pub mod system;
pub mod users;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

pub use body::{Body, Object};

use crate::domain::{DeviceId, Listing, Page};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::stores::broker::Publisher;
use crate::stores::influxdb::InfluxClient;
use crate::stores::objects::ObjectStore;

/// What the API handlers share besides PostgreSQL: the stores, clients and live hub.
#[derive(Clone)]
pub struct ApiState {
    pub influx: InfluxClient,
    pub archive: ObjectStore,
    pub publisher: Publisher,
    pub outbox: Outbox,
    pub metrics: Arc<Metrics>,
    pub inventory: crate::inventory::Inventory,
    /// ISAPI to the HikVision cameras, for snapshots.
    pub cameras: crate::clients::hikvision::CameraClient,
    /// Whether the collector runs in this process (its counters are then the ingest stats).
    pub collector: bool,
    /// Live updates for `/api/stream`, and its settings.
    pub live: crate::live::Hub,
    pub stream: crate::configuration::StreamSettings,
    /// The settings in effect, for `GET /api/system` and its checks.
    pub settings: Arc<crate::configuration::Settings>,
}

/// What the health and metrics endpoints read: every process has them, whatever its roles.
#[derive(Clone)]
pub struct Probes {
    pub influx: InfluxClient,
    pub archive: ObjectStore,
    pub publisher: Publisher,
    pub metrics: Arc<Metrics>,
    /// The sinks a store refuses for a reason of configuration, for `/readyz`.
    pub health: Arc<crate::health::Health>,
    /// `metrics.token`: what a scrape must present, as its SHA-256.
    pub metrics_token: Option<[u8; 32]>,
}

/// `/health`, `/healthz`, `/readyz` and `/metrics`: all a process without the `api` role serves
/// (orchestrators probe it, Prometheus scrapes it).
pub fn configure_probes(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::routes).configure(prometheus::routes);
}

/// A resource module: it registers its own routes and documents them.
pub struct Resource {
    pub routes: fn(&mut web::ServiceConfig),
    pub doc: fn() -> utoipa::openapi::OpenApi,
}

macro_rules! resources {
    ($($module:ident),+ $(,)?) => {
        &[$(Resource { routes: $module::routes, doc: <$module::Doc as utoipa::OpenApi>::openapi }),+]
    };
}

/// Served at the root: the probes, the console and the document.
pub const ROOT: &[Resource] = resources!(health, prometheus, console, openapi);

/// Served under `/api`. A new resource is one module and one line here.
pub const API: &[Resource] = resources!(
    auth, devices, cameras, configs, alerts, events, readings, raw_data, commands, quarantine,
    inventory, analytics, stats, stream, users, system,
);

pub fn configure(cfg: &mut web::ServiceConfig) {
    for resource in ROOT {
        cfg.configure(resource.routes);
    }
    let api = API.iter().fold(web::scope("/api"), |scope, resource| {
        scope.configure(resource.routes)
    });
    cfg.service(api);
}

/// Parses a `{device_id}` path segment: 400 when it cannot be a device id.
pub(crate) fn device_id(raw: &str) -> Result<DeviceId, ApiError> {
    DeviceId::parse(raw).map_err(ApiError::invalid_parameter)
}

/// A page of a listing: the items as a plain JSON array (seed 004's shape), the number of all
/// matching items in `X-Total-Count`, and `Link` (RFC 8288) to the first, previous, next and
/// last pages, with the request's other parameters kept.
pub(crate) fn paged<T: Serialize>(
    req: &HttpRequest,
    page: Page,
    listing: Listing<T>,
) -> HttpResponse {
    let others: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .filter(|(k, _)| k != "limit" && k != "offset")
        .collect();
    let at = |offset: i64, rel: &str| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &others {
            query.append_pair(k, v);
        }
        query.append_pair("limit", &page.limit.to_string());
        query.append_pair("offset", &offset.to_string());
        format!("<{}?{}>; rel=\"{rel}\"", req.path(), query.finish())
    };
    let last = (listing.total.max(1) - 1) / page.limit * page.limit;
    let mut links = vec![at(0, "first")];
    if page.offset > 0 {
        // Past the end, the previous page is the last one.
        links.push(at((page.offset - page.limit).clamp(0, last), "prev"));
    }
    let next = page.offset.saturating_add(page.limit);
    if next < listing.total {
        links.push(at(next, "next"));
    }
    links.push(at(last, "last"));
    HttpResponse::Ok()
        .insert_header(("X-Total-Count", listing.total.to_string()))
        .insert_header((header::LINK, links.join(", ")))
        .json(listing.items)
}

/// The message body of deletes and other actions without a resource to return.
// `Message` in the OpenAPI document, as ever; in the code `domain::Message` is an MQTT message.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Message)]
pub struct Notice {
    pub message: String,
}
