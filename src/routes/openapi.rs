use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "devicehub",
        description = "Device registry, telemetry and analytics API. Every `/api` route except \
                       login, refresh, logout and the stream needs `Authorization: Bearer <token>` \
                       (the stream takes a ticket from `POST /api/stream/ticket`); errors \
                       are `{\"error\": ..., \"details\": ...}`.",
    ),
    components(schemas(
        crate::error::ErrorBody, crate::domain::Role, super::Notice,
        crate::analytics::results::GroupBy,
    )),
    modifiers(&BearerAuth)
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
        let mut doc = ApiDoc::openapi();
        for resource in super::ROOT.iter().chain(super::API) {
            doc.merge((resource.doc)());
        }
        let mut doc = serde_json::to_value(doc).unwrap_or_default();
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

/// This module's routes, at the root: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api-docs/openapi.json").get(document));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(document))]
pub struct Doc;
