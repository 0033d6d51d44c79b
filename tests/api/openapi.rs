use std::collections::BTreeSet;

use serde_json::Value;

use crate::harness::spawn_app;

/// A sample value for each path parameter of the document.
fn sample(parameter: &str) -> &'static str {
    match parameter {
        "device_id" => "no-such-device",
        "key" => "some.key",
        "id" => "1",
        "mac" => "02:00:00:00:00:01",
        "username" => "nobody",
        "object" => "date=2026-01-01/part.json",
        other => panic!("the test has no sample for the path parameter {other}"),
    }
}

fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(&rest[..start]);
        out.push_str(sample(&rest[start + 1..end]));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The routes are taken from the served document itself (there is no second list to keep): every
/// documented operation is served — without a token a secured one answers 401, an open one
/// anything but 404 or 405 — and every `/api` operation but those that exchange credentials (and
/// the stream, which takes a ticket) declares the bearer requirement.
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
    let operations: BTreeSet<(String, String)> = doc["paths"]
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
    assert!(operations.len() >= 45, "{operations:?}");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let open = [
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/stream",
    ];
    for (method, path) in &operations {
        let secured = doc["paths"][path][method]["security"].is_array();
        if path.starts_with("/api/") && !open.contains(&path.as_str()) {
            assert!(secured, "{method} {path} has no security");
        }
        let url = app.url(&concrete(path));
        let request = app
            .client
            .request(method.to_uppercase().parse().unwrap(), &url);
        let request = if doc["paths"][path][method]["requestBody"].is_object() {
            request.json(&serde_json::json!({}))
        } else {
            request
        };
        let status = request.send().await.unwrap().status().as_u16();
        if secured {
            assert_eq!(status, 401, "{method} {path} without a token");
        } else {
            assert!(
                ![404, 405].contains(&status),
                "{method} {path} is documented but answers {status}"
            );
        }
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
