use serde_json::{json, Value};

use crate::harness::{assert_error, spawn_app};

#[tokio::test]
async fn raised_alert_is_listed_and_acknowledged_by_its_user() {
    let app = spawn_app().await;
    app.register("device-001").await;
    let alert = app.raise_alert("device-001", "warning").await;
    assert_eq!(alert["device_id"], "device-001");
    assert_eq!(alert["alert_type"], "high_temperature");
    assert_eq!(alert["acknowledged"], false);

    let open: Value = app
        .get(
            "/api/devices/device-001/alerts?acknowledged=false",
            &app.viewer,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(open.as_array().unwrap().len(), 1);

    let response = app
        .post_empty(
            &format!("/api/alerts/{}/acknowledge", alert["id"]),
            &app.operator,
        )
        .await;
    assert_eq!(response.status(), 200);
    let acked: Value = response.json().await.unwrap();
    assert_eq!(acked["acknowledged"], true);
    assert_eq!(acked["acknowledged_by"], "test-operator");
    assert!(acked["acknowledged_at"].is_string());

    let open: Value = app
        .get(
            "/api/devices/device-001/alerts?acknowledged=false",
            &app.viewer,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(open, json!([]));
    let done: Value = app
        .get(
            "/api/devices/device-001/alerts?acknowledged=true",
            &app.viewer,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(done[0]["id"], alert["id"]);
}

#[tokio::test]
async fn acknowledging_twice_keeps_the_first_acknowledgement() {
    let app = spawn_app().await;
    app.register("d").await;
    let alert = app.raise_alert("d", "info").await;
    let path = format!("/api/alerts/{}/acknowledge", alert["id"]);
    let first: Value = app
        .post_empty(&path, &app.operator)
        .await
        .json()
        .await
        .unwrap();
    let second: Value = app
        .post_empty(&path, &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["acknowledged_by"], "test-operator");
    assert_eq!(second["acknowledged_at"], first["acknowledged_at"]);
}

#[tokio::test]
async fn global_alert_list_spans_devices_and_filters_by_severity() {
    let app = spawn_app().await;
    app.register("a").await;
    app.register("b").await;
    app.raise_alert("a", "critical").await;
    let newest = app.raise_alert("b", "info").await;
    let all: Value = app
        .get("/api/alerts", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["id"], newest["id"], "newest first");
    let critical: Value = app
        .get("/api/alerts?severity=critical", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(critical.as_array().unwrap().len(), 1);
    assert_eq!(critical[0]["device_id"], "a");
}

#[tokio::test]
async fn unknown_alert_is_404_and_bad_alerts_are_422() {
    let app = spawn_app().await;
    app.register("d").await;
    let body = assert_error(
        app.post_empty("/api/alerts/999999/acknowledge", &app.operator)
            .await,
        404,
    )
    .await;
    assert_eq!(body["details"]["alert_id"], 999_999);
    for bad in [
        json!({"alert_type": "t", "severity": "apocalyptic"}),
        json!({"alert_type": "", "severity": "info"}),
        json!({"severity": "info"}),
        json!({"alert_type": "t", "severity": "info", "message": "m".repeat(2001)}),
    ] {
        let response = app
            .post_json("/api/devices/d/alerts", &app.operator, &bad)
            .await;
        assert_error(response, 422).await;
    }
}
