use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    alerts, analytics, auth, cameras, commands, configs, console, devices, events, health,
    inventory, metrics, prometheus, quarantine, raw_data, stats, stream, users,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "devicehub",
        description = "Device registry, telemetry and analytics API. Every `/api` route except \
                       login, refresh, logout and the stream needs `Authorization: Bearer <token>` \
                       (the stream takes a ticket from `POST /api/stream/ticket`); errors \
                       are `{\"error\": ..., \"details\": ...}`.",
    ),
    paths(
        health::health, health::healthz, health::readyz, document, prometheus::metrics,
        console::index, console::docs,
        auth::login, auth::refresh, auth::logout, auth::me,
        devices::list, devices::register, devices::read, devices::update, devices::delete,
        devices::heartbeat, devices::status, cameras::snapshot,
        configs::list, configs::set, configs::delete,
        alerts::list_for_device, alerts::raise, alerts::list, alerts::acknowledge,
        events::list,
        metrics::read,
        raw_data::list, raw_data::get,
        commands::create, commands::list,
        quarantine::list, quarantine::read,
        stats::read,
        stream::ticket, stream::stream,
        inventory::list, inventory::read,
        analytics::energy, analytics::health, analytics::summary,
        users::list, users::create, users::update, users::delete,
    ),
    components(schemas(
        crate::error::ErrorBody, crate::domain::Role, super::Message,
        crate::analytics::results::GroupBy,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "console", description = "The web console and these docs (HTML)"),
        (name = "auth", description = "Tokens"),
        (name = "devices", description = "The device registry"),
        (name = "configs", description = "Per-device configuration"),
        (name = "alerts", description = "Alerts and acknowledgements"),
        (name = "events", description = "qs/v1 events"),
        (name = "metrics", description = "Time series from InfluxDB"),
        (name = "archive", description = "The raw archive"),
        (name = "commands", description = "Commands to devices over MQTT"),
        (name = "stats", description = "Fleet counters"),
        (name = "stream", description = "Live updates for browsers (Server-Sent Events)"),
        (name = "quarantine", description = "Records a store refused for good"),
        (name = "inventory", description = "What is on the home network (DuckDB over the router's snapshots)"),
        (name = "analytics", description = "Gold tables of the bronze/silver/gold models: energy, cost, health"),
        (name = "users", description = "API users and their roles (admin)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The document with the rules the API enforces ([`super::openapi_rules`]), pretty-printed
/// exactly as `devicehub openapi` prints it; built once.
pub fn document_json() -> String {
    static DOCUMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        super::openapi_rules::apply(&mut doc);
        let mut json = serde_json::to_string_pretty(&doc)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        json.push('\n');
        json
    });
    DOCUMENT.clone()
}

/// This OpenAPI 3 document.
#[utoipa::path(get, operation_id = "openapi_document", path = "/api-docs/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document_json())
}
