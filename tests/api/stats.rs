use serde_json::{json, Value};

use crate::harness::spawn_app;

#[tokio::test]
async fn stats_count_devices_by_status_open_alerts_and_online_devices() {
    let app = spawn_app().await;
    let empty: Value = app
        .get("/api/stats", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(empty["total_devices"], 0);
    assert_eq!(empty["device_by_status"], json!([]));

    app.register("a").await;
    app.register("b").await;
    app.register_with(json!({"device_id": "c", "device_name": "C", "status": "inactive"}))
        .await;
    app.post_empty("/api/devices/a/heartbeat", &app.operator)
        .await;
    let alert = app.raise_alert("a", "warning").await;
    app.raise_alert("b", "warning").await;
    app.post_empty(
        &format!("/api/alerts/{}/acknowledge", alert["id"]),
        &app.operator,
    )
    .await;

    let stats: Value = app
        .get("/api/stats", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["total_devices"], 3);
    assert_eq!(
        stats["device_by_status"],
        json!([{"status": "active", "count": 2}, {"status": "inactive", "count": 1}])
    );
    assert_eq!(stats["unacknowledged_alerts"], 1);
    assert_eq!(stats["online_devices"], 1);
}
