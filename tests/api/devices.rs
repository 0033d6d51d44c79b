use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{assert_error, spawn_app};

#[tokio::test]
async fn register_returns_201_with_the_stored_device() {
    let app = spawn_app().await;
    let device = app
        .register_with(json!({
            "device_id": "device-004", "device_name": "New Sensor", "device_type": "temperature",
            "location": "Building C", "metadata": {"sampling_rate": "5s"}
        }))
        .await;
    assert_eq!(device["device_id"], "device-004");
    assert_eq!(device["device_name"], "New Sensor");
    assert_eq!(device["status"], "active", "status defaults to active");
    assert_eq!(device["connection_status"], "unknown");
    assert_eq!(device["metadata"]["sampling_rate"], "5s");
    assert!(device["last_seen"].is_null());

    let read: Value = app
        .get("/api/devices/device-004", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, device);
}

#[tokio::test]
async fn duplicate_registration_is_409() {
    let app = spawn_app().await;
    app.register("dup-1").await;
    let response = app
        .post_json(
            "/api/devices",
            &app.admin,
            &json!({"device_id": "dup-1", "device_name": "Again"}),
        )
        .await;
    let body = assert_error(response, 409).await;
    assert!(body["error"].as_str().unwrap().contains("dup-1"));
}

#[tokio::test]
async fn list_is_newest_first_filters_by_status_type_and_location_and_pages() {
    let app = spawn_app().await;
    app.register_with(
        json!({"device_id": "a", "device_name": "A", "device_type": "meter", "location": "hall"}),
    )
    .await;
    app.register_with(json!({"device_id": "b", "device_name": "B", "device_type": "sensor", "status": "inactive"})).await;
    app.register_with(json!({"device_id": "c", "device_name": "C", "device_type": "meter"}))
        .await;

    let ids = |v: Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|d| d["device_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all: Value = app
        .get("/api/devices", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(all), ["c", "b", "a"]);
    let meters: Value = app
        .get("/api/devices?type=meter", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(meters), ["c", "a"]);
    let hall: Value = app
        .get("/api/devices?location=hall&type=meter", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(hall), ["a"]);
    let odd = app.get("/api/devices?location=a%0Ab", &app.viewer).await;
    assert_error(odd, 400).await;
    let inactive: Value = app
        .get("/api/devices?status=inactive", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(inactive), ["b"]);
    let page: Value = app
        .get("/api/devices?limit=1&offset=1", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ids(page), ["b"]);
    let past_end: Value = app
        .get("/api/devices?offset=10", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(past_end, json!([]));
}

#[tokio::test]
async fn unknown_device_is_404_on_every_per_device_route() {
    let app = spawn_app().await;
    for (method, path, body) in [
        (Method::GET, "/api/devices/ghost", None),
        (
            Method::PUT,
            "/api/devices/ghost",
            Some(json!({"device_name": "x"})),
        ),
        (Method::DELETE, "/api/devices/ghost", None),
        (Method::POST, "/api/devices/ghost/heartbeat", None),
        (Method::GET, "/api/devices/ghost/status", None),
        (Method::GET, "/api/devices/ghost/configs", None),
        (
            Method::PUT,
            "/api/devices/ghost/configs/k",
            Some(json!({"value": 1})),
        ),
        (Method::DELETE, "/api/devices/ghost/configs/k", None),
        (Method::GET, "/api/devices/ghost/alerts", None),
        (
            Method::POST,
            "/api/devices/ghost/alerts",
            Some(json!({"alert_type": "t", "severity": "info"})),
        ),
        (Method::GET, "/api/devices/ghost/events", None),
    ] {
        let mut request = app.request(method.clone(), path, Some(&app.admin));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let body = assert_error(request.send().await.unwrap(), 404).await;
        assert_eq!(
            body["details"]["device_id"], "ghost",
            "{method} {path}: {body}"
        );
    }
}

#[tokio::test]
async fn partial_update_changes_only_the_given_fields() {
    let app = spawn_app().await;
    let before = app
        .register_with(json!({"device_id": "u1", "device_name": "Old", "location": "Building C", "device_type": "t"}))
        .await;
    let response = app
        .send_json(Method::PUT, "/api/devices/u1", &app.admin,
            &json!({"device_name": "Updated Sensor", "location": "Building D", "metadata": {"k": 2}}))
        .await;
    assert_eq!(response.status(), 200);
    let after: Value = response.json().await.unwrap();
    assert_eq!(after["device_name"], "Updated Sensor");
    assert_eq!(after["location"], "Building D");
    assert_eq!(after["metadata"], json!({"k": 2}));
    assert_eq!(after["device_type"], before["device_type"]);
    assert_eq!(after["status"], before["status"]);
    assert_eq!(after["created_at"], before["created_at"]);
    assert_ne!(after["updated_at"], before["updated_at"]);
}

#[tokio::test]
async fn empty_update_is_422() {
    let app = spawn_app().await;
    app.register("u2").await;
    let response = app
        .send_json(Method::PUT, "/api/devices/u2", &app.admin, &json!({}))
        .await;
    assert_error(response, 422).await;
}

#[tokio::test]
async fn delete_removes_the_device_with_its_configs_alerts_and_commands() {
    let app = spawn_app().await;
    app.register("gone").await;
    app.register("stays").await;
    for id in ["gone", "stays"] {
        app.send_json(
            Method::PUT,
            &format!("/api/devices/{id}/configs/rate"),
            &app.operator,
            &json!({"value": 5}),
        )
        .await;
        app.raise_alert(id, "warning").await;
        sqlx::query("INSERT INTO commands (cmd_id, device_id, cmd) VALUES ($1, $2, 'reboot')")
            .bind(uuid::Uuid::new_v4())
            .bind(id)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    let response = app
        .request(Method::DELETE, "/api/devices/gone", Some(&app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("gone"));

    assert_eq!(
        app.get("/api/devices/gone", &app.viewer).await.status(),
        404
    );
    for table in ["device_configs", "alerts", "commands"] {
        let counts: (i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*) FILTER (WHERE device_id = 'gone'), count(*) FILTER (WHERE device_id = 'stays') FROM {table}"
        ))
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(counts, (0, 1), "{table}");
    }
    let alerts: Value = app
        .get("/api/alerts", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(alerts.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn heartbeat_sets_last_seen_and_marks_the_device_online() {
    let app = spawn_app().await;
    app.register("hb").await;
    let status: Value = app
        .get("/api/devices/hb/status", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        status,
        json!({"device_id": "hb", "connection_status": "unknown", "last_seen": null, "fw_version": null})
    );

    let response = app
        .post_empty("/api/devices/hb/heartbeat", &app.operator)
        .await;
    assert_eq!(response.status(), 200);
    let beat: Value = response.json().await.unwrap();
    assert!(beat["last_seen"].is_string());

    let status: Value = app
        .get("/api/devices/hb/status", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["connection_status"], "online");
    assert_eq!(status["last_seen"], beat["last_seen"]);
}

#[tokio::test]
async fn metadata_with_the_largest_numbers_reads_back() {
    let app = spawn_app().await;
    let metadata = serde_json::json!({"max": f64::MAX, "min": -f64::MAX, "tiny": 5e-324, "big": 18446744073709551615u64});
    let response = app
        .post_json(
            "/api/devices",
            &app.admin,
            &serde_json::json!({"device_id": "d-max", "device_name": "Max", "metadata": metadata}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let device: serde_json::Value = app
        .get("/api/devices/d-max", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(device["metadata"], metadata);
}
