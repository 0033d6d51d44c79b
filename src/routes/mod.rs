//! One file per resource; handlers parse input into domain types, call the registry and return
//! JSON. The least role each route needs is the type of its `Viewer`/`Operator`/`Admin` argument.

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
pub mod metrics;
pub mod openapi;
mod openapi_rules;
pub mod prometheus;
pub mod quarantine;
pub mod raw_data;
pub mod stats;
pub mod stream;
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

/// The stores and connections the API uses besides PostgreSQL.
#[derive(Clone)]
pub struct Stores {
    pub influx: InfluxClient,
    pub archive: ObjectStore,
    pub publisher: Publisher,
    pub outbox: Outbox,
    pub metrics: Arc<Metrics>,
    pub inventory: crate::inventory::Inventory,
    /// ISAPI to the HikVision cameras, for snapshots.
    pub cameras: crate::sources::hikvision::CameraClient,
    /// Whether the collector runs in this process (its counters are then the ingest stats).
    pub collector: bool,
    /// Live updates for `/api/stream`, and its settings.
    pub live: crate::live::Hub,
    pub stream: crate::configuration::StreamSettings,
}

/// What the health and metrics endpoints read: every process has them, whatever its roles.
#[derive(Clone)]
pub struct Probes {
    pub influx: InfluxClient,
    pub archive: ObjectStore,
    pub publisher: Publisher,
    pub metrics: Arc<Metrics>,
}

/// `/health`, `/healthz`, `/readyz` and `/metrics`: all a process without the `api` role serves
/// (orchestrators probe it, Prometheus scrapes it).
pub fn configure_probes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").get(health::health))
        .service(web::resource("/healthz").get(health::healthz))
        .service(web::resource("/readyz").get(health::readyz))
        .service(web::resource("/metrics").get(prometheus::metrics));
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Explicit resources, so that a known path with the wrong method answers 405, not 404.
    configure_probes(cfg);
    let compressed = || actix_web::middleware::Compress::default();
    cfg.service(web::resource("/").get(console::index))
        .service(web::resource("/docs").get(console::docs))
        .service(
            web::resource("/docs/{file}")
                .wrap(compressed())
                .get(console::asset),
        )
        .service(
            web::resource("/console/{file}")
                .wrap(compressed())
                .get(console::asset),
        )
        .service(
            web::resource("/vendor/{path:.+}")
                .wrap(compressed())
                .get(console::asset),
        )
        .service(web::resource("/api-docs/openapi.json").get(openapi::document))
        .service(
            web::scope("/api")
                .service(web::resource("/auth/login").post(auth::login))
                .service(web::resource("/auth/refresh").post(auth::refresh))
                .service(web::resource("/auth/logout").post(auth::logout))
                .service(web::resource("/auth/me").get(auth::me))
                .service(
                    web::resource("/devices")
                        .get(devices::list)
                        .post(devices::register),
                )
                .service(
                    web::resource("/devices/{device_id}")
                        .get(devices::read)
                        .put(devices::update)
                        .delete(devices::delete),
                )
                .service(web::resource("/devices/{device_id}/heartbeat").post(devices::heartbeat))
                .service(web::resource("/devices/{device_id}/status").get(devices::status))
                .service(web::resource("/devices/{device_id}/snapshot").get(cameras::snapshot))
                .service(web::resource("/devices/{device_id}/configs").get(configs::list))
                .service(
                    web::resource("/devices/{device_id}/configs/{key}")
                        .put(configs::set)
                        .delete(configs::delete),
                )
                .service(
                    web::resource("/devices/{device_id}/alerts")
                        .get(alerts::list_for_device)
                        .post(alerts::raise),
                )
                .service(web::resource("/devices/{device_id}/events").get(events::list))
                .service(web::resource("/devices/{device_id}/metrics").get(metrics::read))
                .service(web::resource("/devices/{device_id}/raw-data").get(raw_data::list))
                .service(
                    web::resource("/devices/{device_id}/raw-data/{object:.+}").get(raw_data::get),
                )
                .service(
                    web::resource("/devices/{device_id}/commands")
                        .get(commands::list)
                        .post(commands::create),
                )
                .service(web::resource("/quarantine").get(quarantine::list))
                .service(web::resource("/quarantine/{id}").get(quarantine::read))
                .service(web::resource("/inventory").get(inventory::list))
                .service(web::resource("/inventory/{mac}").get(inventory::read))
                .service(web::resource("/analytics/energy/daily").get(analytics::energy))
                .service(web::resource("/analytics/health").get(analytics::health))
                .service(web::resource("/analytics/summary").get(analytics::summary))
                .service(web::resource("/alerts").get(alerts::list))
                .service(web::resource("/alerts/{id}/acknowledge").post(alerts::acknowledge))
                .service(web::resource("/stats").get(stats::read))
                .service(web::resource("/stream").get(stream::stream))
                .service(web::resource("/stream/ticket").post(stream::ticket))
                .service(web::resource("/users").get(users::list).post(users::create))
                .service(
                    web::resource("/users/{username}")
                        .patch(users::update)
                        .delete(users::delete),
                ),
        );
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
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Message {
    pub message: String,
}
