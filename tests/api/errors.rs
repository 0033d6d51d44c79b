//! Bad input of every kind gets the JSON error body with the right status, never a 500 or HTML.

use devicehub::domain::Role;
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{assert_error, spawn_app, TestApp};

async fn register_raw(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/api/devices", &app.admin, &body).await
}

#[tokio::test]
async fn each_invalid_registration_field_is_422_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({"device_id": "a/b", "device_name": "x"}), "device_id"),
        (
            json!({"device_id": "has space", "device_name": "x"}),
            "device_id",
        ),
        (json!({"device_id": "", "device_name": "x"}), "device_id"),
        (
            json!({"device_id": "a".repeat(129), "device_name": "x"}),
            "device_id",
        ),
        (json!({"device_id": "ok", "device_name": ""}), "device_name"),
        (
            json!({"device_id": "ok", "device_name": "n".repeat(201)}),
            "device_name",
        ),
        (
            json!({"device_id": "ok", "device_name": "x", "device_type": "t".repeat(65)}),
            "device_type",
        ),
        (
            json!({"device_id": "ok", "device_name": "x", "location": "l".repeat(201)}),
            "location",
        ),
        (
            json!({"device_id": "ok", "device_name": "x", "metadata": [1, 2]}),
            "metadata",
        ),
        (
            json!({"device_id": "ok", "device_name": "x", "metadata": {"big": "m".repeat(17 * 1024)}}),
            "metadata",
        ),
    ];
    for (body, field) in cases {
        let error = assert_error(register_raw(&app, body.clone()).await, 422).await;
        assert!(
            error["details"][field].is_array(),
            "{field} not named for {body}: {error}"
        );
    }
    let devices: Value = app
        .get("/api/devices", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(devices, json!([]), "nothing invalid was stored");
}

#[tokio::test]
async fn wrong_shapes_are_422() {
    let app = spawn_app().await;
    for body in [
        json!({"device_id": "ok", "device_name": "x", "colour": "red"}),
        json!({"device_id": "ok"}),
        json!({"device_id": 5, "device_name": "x"}),
        json!({"device_id": "ok", "device_name": "x", "status": "switched-on"}),
        json!([{"device_id": "ok", "device_name": "x"}]),
        // serde alone would read a struct from its fields in order.
        json!(["ok", "x"]),
        json!("ok"),
    ] {
        let error = assert_error(register_raw(&app, body.clone()).await, 422).await;
        assert!(error["details"]["body"].is_array(), "{body}: {error}");
    }
    // Nor does an array log in, or name a refresh token to revoke.
    app.add_user("ann", "correct horse battery", Role::Viewer)
        .await;
    let login = app
        .request(Method::POST, "/api/auth/login", None)
        .json(&json!(["ann", "correct horse battery"]))
        .send()
        .await
        .unwrap();
    assert_error(login, 422).await;
    let logout = app
        .request(Method::POST, "/api/auth/logout", None)
        .json(&json!(["a-refresh-token"]))
        .send()
        .await
        .unwrap();
    assert_error(logout, 400).await;
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for raw in ["{", "not json", "{\"device_id\": \"a\",}", ""] {
        let response = app
            .request(Method::POST, "/api/devices", Some(&app.admin))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_error(response, 400).await;
    }
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    let response = app
        .request(Method::POST, "/api/devices", Some(&app.admin))
        .header("content-type", "text/plain")
        .body(r#"{"device_id": "a", "device_name": "b"}"#)
        .send()
        .await
        .unwrap();
    assert_error(response, 415).await;
}

#[tokio::test]
async fn oversized_body_is_413() {
    let app = spawn_app().await;
    let big =
        json!({"device_id": "a", "device_name": "b", "metadata": {"x": "y".repeat(300 * 1024)}});
    let body = assert_error(register_raw(&app, big).await, 413).await;
    assert_eq!(body["details"]["limit_bytes"], 262_144);
}

#[tokio::test]
async fn bad_query_parameters_are_400() {
    let app = spawn_app().await;
    for query in [
        "limit=abc",
        "limit=0",
        "limit=1001",
        "offset=-1",
        "status=on",
        "colour=red",
        "type=",
    ] {
        let response = app.get(&format!("/api/devices?{query}"), &app.viewer).await;
        assert_error(response, 400).await;
    }
    for query in ["acknowledged=maybe", "severity=loud", "limit=-5"] {
        let response = app.get(&format!("/api/alerts?{query}"), &app.viewer).await;
        assert_error(response, 400).await;
    }
}

#[tokio::test]
async fn bad_path_segments_are_400() {
    let app = spawn_app().await;
    let long = "x".repeat(129);
    for path in [
        "/api/devices/bad%20id".to_owned(),
        "/api/devices/a+b/status".to_owned(),
        format!("/api/devices/{long}"),
        "/api/alerts/abc/acknowledge".to_owned(),
        "/api/devices/ok/configs/bad%20key".to_owned(),
    ] {
        let method = if path.ends_with("acknowledge") {
            Method::POST
        } else if path.contains("configs") {
            Method::DELETE
        } else {
            Method::GET
        };
        let response = app
            .request(method, &path, Some(&app.admin))
            .send()
            .await
            .unwrap();
        assert_error(response, 400).await;
    }
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_in_json() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_error(response, 404).await;
    let response = app
        .request(Method::PATCH, "/api/devices", Some(&app.admin))
        .send()
        .await
        .unwrap();
    assert_error(response, 405).await;
    let response = app
        .request(Method::DELETE, "/api/stats", Some(&app.admin))
        .send()
        .await
        .unwrap();
    assert_error(response, 405).await;
}

#[tokio::test]
async fn text_a_store_cannot_hold_is_422_naming_the_field_never_500() {
    let app = spawn_app().await;
    app.register("d1").await;
    let cases: [(&str, Method, Value, &str); 9] = [
        (
            "/api/devices",
            Method::POST,
            json!({"device_id": "..", "device_name": "x"}),
            "device_id",
        ),
        (
            "/api/devices",
            Method::POST,
            json!({"device_id": ".", "device_name": "x"}),
            "device_id",
        ),
        (
            "/api/devices",
            Method::POST,
            json!({"device_id": "n", "device_name": "a\u{0}b"}),
            "device_name",
        ),
        (
            "/api/devices/d1",
            Method::PUT,
            json!({"device_type": "dc\nmeter"}),
            "device_type",
        ),
        (
            "/api/devices/d1",
            Method::PUT,
            json!({"metadata": {"note": "x\u{0}"}}),
            "metadata",
        ),
        (
            "/api/devices/d1/configs/colour",
            Method::PUT,
            json!({"value": {"k\u{0}": 1}}),
            "value",
        ),
        (
            "/api/devices/d1/configs/send_interval_s",
            Method::PUT,
            json!({"value": 0}),
            "value",
        ),
        (
            "/api/devices/d1/alerts",
            Method::POST,
            json!({"alert_type": "a\u{1b}", "severity": "info", "message": "m"}),
            "alert_type",
        ),
        (
            "/api/devices/d1/commands",
            Method::POST,
            json!({"cmd": "update_config", "params": {"send_interval_s": -1}}),
            "value",
        ),
    ];
    for (path, method, body, field) in cases {
        let response = app.send_json(method.clone(), path, &app.admin, &body).await;
        let error = assert_error(response, 422).await;
        assert!(
            error["details"][field].is_array(),
            "{method} {path} {body}: {field} not named in {error}"
        );
    }
    let ok = app
        .send_json(
            Method::PUT,
            "/api/devices/d1/configs/send_interval_s",
            &app.admin,
            &json!({"value": 30}),
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert_error(app.get("/api/devices?type=a%00b", &app.viewer).await, 400).await;
    assert_error(
        app.get("/api/devices/d1/events?event_type=%00", &app.viewer)
            .await,
        400,
    )
    .await;
    let login = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "a\u{0}", "password": "whatever"}))
        .send()
        .await
        .unwrap();
    assert_error(login, 422).await;
}
