//! The web console (`/`) and the interactive API docs (`/docs`): files from `web/`, embedded in
//! the binary at compile time, so devicehub serves them offline and with no build step.
//!
//! Caching: the vendored libraries' paths name their versions, so they are cached for a year
//! (`immutable`); the console's own files are revalidated on every load (`no-cache` with an ETag,
//! answered 304 when unchanged), so an upgrade shows at the next reload.

use std::collections::HashMap;
use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $file)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("/", "console/index.html", HTML),
    // The console's ES modules: app.js routes between the pages and imports the rest.
    asset!("/console/app.js", "console/app.js", JS),
    asset!("/console/dom.js", "console/dom.js", JS),
    asset!("/console/api.js", "console/api.js", JS),
    asset!("/console/auth.js", "console/auth.js", JS),
    asset!("/console/live.js", "console/live.js", JS),
    asset!("/console/chart.js", "console/chart.js", JS),
    asset!("/console/overview.js", "console/overview.js", JS),
    asset!("/console/devices.js", "console/devices.js", JS),
    asset!("/console/device.js", "console/device.js", JS),
    asset!("/console/alerts.js", "console/alerts.js", JS),
    asset!("/console/inventory.js", "console/inventory.js", JS),
    asset!("/console/energy.js", "console/energy.js", JS),
    asset!("/console/system.js", "console/system.js", JS),
    asset!("/console/app.css", "console/app.css", CSS),
    asset!("/docs", "docs/index.html", HTML),
    asset!("/docs/docs.js", "docs/docs.js", JS),
    asset!(
        "/vendor/uplot-1.6.32/uPlot.iife.min.js",
        "vendor/uplot-1.6.32/uPlot.iife.min.js",
        JS
    ),
    asset!(
        "/vendor/uplot-1.6.32/uPlot.min.css",
        "vendor/uplot-1.6.32/uPlot.min.css",
        CSS
    ),
    asset!(
        "/vendor/uplot-1.6.32/LICENSE",
        "vendor/uplot-1.6.32/LICENSE",
        TEXT
    ),
    asset!(
        "/vendor/swagger-ui-5.35.0/swagger-ui-bundle.js",
        "vendor/swagger-ui-5.35.0/swagger-ui-bundle.js",
        JS
    ),
    asset!(
        "/vendor/swagger-ui-5.35.0/swagger-ui.css",
        "vendor/swagger-ui-5.35.0/swagger-ui.css",
        CSS
    ),
    asset!(
        "/vendor/swagger-ui-5.35.0/LICENSE",
        "vendor/swagger-ui-5.35.0/LICENSE",
        TEXT
    ),
    asset!(
        "/vendor/swagger-ui-5.35.0/NOTICE",
        "vendor/swagger-ui-5.35.0/NOTICE",
        TEXT
    ),
    asset!(
        "/vendor/swagger-ui-5.35.0/swagger-ui-bundle.js.LICENSE.txt",
        "vendor/swagger-ui-5.35.0/swagger-ui-bundle.js.LICENSE.txt",
        TEXT
    ),
];

/// Every asset by path, with its ETag.
static BY_PATH: LazyLock<HashMap<&'static str, (&'static Asset, String)>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = Sha256::digest(a.body);
            let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            (a.path, (a, format!("\"{tag}\"")))
        })
        .collect()
});

/// The pages' scripts, styles and API calls come from devicehub only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The web console: overview, devices, alerts, home network and energy, live.
#[utoipa::path(get, operation_id = "console", path = "/", tag = "console",
    responses((status = 200, description = "The console's page", content_type = "text/html")))]
pub async fn index(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve(&req, "/")
}

/// Interactive API docs (Swagger UI) over `/api-docs/openapi.json`.
#[utoipa::path(get, operation_id = "api_docs", path = "/docs", tag = "console",
    responses((status = 200, description = "The API docs page", content_type = "text/html")))]
pub async fn docs(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve(&req, "/docs")
}

/// The console's scripts and styles and the vendored libraries.
pub async fn asset(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    serve(&req, req.path())
}

fn serve(req: &HttpRequest, path: &str) -> Result<HttpResponse, ApiError> {
    let (asset, etag) = BY_PATH.get(path).ok_or_else(|| ApiError::NotFound {
        what: "file",
        details: serde_json::json!({ "path": path }),
    })?;
    let cache = if path.starts_with("/vendor/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, etag.as_str()))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if asset.content_type == HTML {
        response
            .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
            .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    }
    if fresh {
        return Ok(response.finish());
    }
    Ok(response.content_type(asset.content_type).body(asset.body))
}

/// This module's routes, at the root: the console, the docs page and their assets (compressed).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let compressed = actix_web::middleware::Compress::default;
    cfg.service(web::resource("/").get(index))
        .service(web::resource("/docs").get(docs))
        .service(web::resource("/docs/{file}").wrap(compressed()).get(asset))
        .service(
            web::resource("/console/{file}")
                .wrap(compressed())
                .get(asset),
        )
        .service(
            web::resource("/vendor/{path:.+}")
                .wrap(compressed())
                .get(asset),
        );
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(index, docs),
    tags((name = "console", description = "The web console and these docs (HTML)"))
)]
pub struct Doc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendored_file_is_served_as_vendored_and_every_asset_is_unique() {
        assert_eq!(BY_PATH.len(), ASSETS.len());
        let vendored = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/web/vendor/SHA256SUMS"
        ))
        .unwrap();
        for line in vendored.lines() {
            let (sum, file) = line.split_once("  ").unwrap();
            let Some((asset, _)) = BY_PATH.get(format!("/vendor/{file}").as_str()) else {
                panic!("{file} is vendored but not served");
            };
            let served: String = Sha256::digest(asset.body)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(
                served, sum,
                "{file} differs from what scripts/vendor-web.sh fetched"
            );
        }
    }

    #[test]
    fn every_file_of_the_console_is_served() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/web/console");
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name == "index.html" {
                continue;
            }
            assert!(
                BY_PATH.contains_key(format!("/console/{name}").as_str()),
                "web/console/{name} is not served (add it to ASSETS)"
            );
        }
    }
}
