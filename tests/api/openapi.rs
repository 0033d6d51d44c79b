use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::spawn_app;

/// Every route the application serves, as (method, OpenAPI path).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/api-docs/openapi.json"),
    ("post", "/api/auth/login"),
    ("post", "/api/auth/refresh"),
    ("post", "/api/auth/logout"),
    ("get", "/api/auth/me"),
    ("get", "/api/devices"),
    ("post", "/api/devices"),
    ("get", "/api/devices/{device_id}"),
    ("put", "/api/devices/{device_id}"),
    ("delete", "/api/devices/{device_id}"),
    ("post", "/api/devices/{device_id}/heartbeat"),
    ("get", "/api/devices/{device_id}/status"),
    ("get", "/api/devices/{device_id}/configs"),
    ("put", "/api/devices/{device_id}/configs/{key}"),
    ("delete", "/api/devices/{device_id}/configs/{key}"),
    ("get", "/api/devices/{device_id}/alerts"),
    ("post", "/api/devices/{device_id}/alerts"),
    ("get", "/api/alerts"),
    ("post", "/api/alerts/{id}/acknowledge"),
    ("get", "/api/devices/{device_id}/events"),
    ("get", "/api/stats"),
    ("get", "/api/users"),
    ("post", "/api/users"),
    ("patch", "/api/users/{username}"),
    ("delete", "/api/users/{username}"),
    ("get", "/metrics"),
    ("get", "/api/devices/{device_id}/metrics"),
    ("get", "/api/devices/{device_id}/raw-data"),
    ("get", "/api/devices/{device_id}/raw-data/{object}"),
    ("get", "/api/devices/{device_id}/commands"),
    ("post", "/api/devices/{device_id}/commands"),
    ("get", "/api/quarantine"),
    ("get", "/api/quarantine/{id}"),
    ("get", "/api/inventory"),
    ("get", "/api/inventory/{mac}"),
    ("get", "/api/devices/{device_id}/snapshot"),
    ("get", "/api/analytics/energy/daily"),
    ("get", "/api/analytics/health"),
    ("get", "/api/analytics/summary"),
    ("post", "/api/stream/ticket"),
    ("get", "/api/stream"),
    ("get", "/"),
    ("get", "/docs"),
];

#[tokio::test]
async fn served_document_describes_every_route_and_the_bearer_scheme() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/api-docs/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Every /api route but those that exchange credentials (login, refresh, logout) declares
    // the bearer requirement; the stream takes a ticket in its query instead.
    let open = [
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/stream",
    ];
    for (method, path) in ROUTES
        .iter()
        .filter(|(_, p)| p.starts_with("/api/") && !open.contains(p))
    {
        let security = &doc["paths"][path][method]["security"];
        assert!(security.is_array(), "{method} {path} has no security");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[test]
fn committed_document_equals_the_generated_one() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .expect("openapi/openapi.json is committed");
    let generated = devicehub::routes::openapi::document_json();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}
