use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{assert_error, spawn_app};

#[tokio::test]
async fn configs_are_set_replaced_listed_and_deleted() {
    let app = spawn_app().await;
    app.register("c1").await;
    let put = |key: &'static str, value: Value| {
        let app = &app;
        async move {
            app.send_json(
                Method::PUT,
                &format!("/api/devices/c1/configs/{key}"),
                &app.operator,
                &json!({"value": value}),
            )
            .await
        }
    };
    let response = put("send_interval_s", json!(10)).await;
    assert_eq!(response.status(), 200);
    let entry: Value = response.json().await.unwrap();
    assert_eq!(
        (entry["key"].clone(), entry["value"].clone()),
        (json!("send_interval_s"), json!(10))
    );
    put("send_interval_s", json!(30)).await;
    put("mode", json!({"eco": true})).await;

    let list: Value = app
        .get("/api/devices/c1/configs", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    let pairs: Vec<(Value, Value)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["key"].clone(), e["value"].clone()))
        .collect();
    assert_eq!(
        pairs,
        [
            (json!("mode"), json!({"eco": true})),
            (json!("send_interval_s"), json!(30))
        ]
    );

    let response = app
        .request(
            Method::DELETE,
            "/api/devices/c1/configs/mode",
            Some(&app.operator),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let list: Value = app
        .get("/api/devices/c1/configs", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);

    let response = app
        .request(
            Method::DELETE,
            "/api/devices/c1/configs/mode",
            Some(&app.operator),
        )
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 404).await;
    assert_eq!(body["details"]["key"], "mode");
}

#[tokio::test]
async fn invalid_config_writes_are_rejected() {
    let app = spawn_app().await;
    app.register("c2").await;
    let path = "/api/devices/c2/configs/k";
    let response = app
        .send_json(Method::PUT, path, &app.operator, &json!({"val": 1}))
        .await;
    assert_error(response, 422).await;
    let response = app
        .send_json(Method::PUT, path, &app.operator, &json!({}))
        .await;
    assert_error(response, 422).await;
    let big = json!({"value": "v".repeat(20 * 1024)});
    let body = assert_error(
        app.send_json(Method::PUT, path, &app.operator, &big).await,
        422,
    )
    .await;
    assert!(body["details"]["value"].is_array());
    let long_key = format!("/api/devices/c2/configs/{}", "k".repeat(65));
    let response = app
        .send_json(Method::PUT, &long_key, &app.operator, &json!({"value": 1}))
        .await;
    assert_error(response, 400).await;
}
