use serde_json::{json, Value};

use crate::harness::{assert_error, spawn_app};

#[tokio::test]
async fn stored_events_of_a_device_are_listed_newest_first_and_filtered_by_type() {
    let app = spawn_app().await;
    app.register("esp32-01").await;
    for (i, (id, kind, num, text)) in [
        ("e1", "temperature", Some(23.5), None),
        ("e2", "button_press", None, Some("long")),
        ("e3", "temperature", Some(24.0), None),
    ]
    .into_iter()
    .enumerate()
    {
        sqlx::query(
            "INSERT INTO events (event_id, device_id, schema, event_type, value_num, value_text, unit, ts_device, ts_server, meta) \
             VALUES ($1, 'esp32-01', 1, $2, $3, $4, 'C', now(), now() + make_interval(secs => $5), '{\"sensor\": \"dht22\"}')",
        )
        .bind(id)
        .bind(kind)
        .bind(num)
        .bind(text)
        .bind(i as f64)
        .execute(&app.pool)
        .await
        .unwrap();
    }
    let all: Value = app
        .get("/api/devices/esp32-01/events", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["e3", "e2", "e1"]);
    assert_eq!(all[1]["value_text"], "long");
    assert_eq!(all[2]["value_num"], 23.5);
    assert_eq!(all[2]["meta"], json!({"sensor": "dht22"}));

    let temps: Value = app
        .get(
            "/api/devices/esp32-01/events?event_type=temperature&limit=1",
            &app.viewer,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(temps.as_array().unwrap().len(), 1);
    assert_eq!(temps[0]["event_id"], "e3");

    assert_error(
        app.get("/api/devices/esp32-01/events?limit=0", &app.viewer)
            .await,
        400,
    )
    .await;
}
