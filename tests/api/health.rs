use serde_json::Value;

use crate::harness::spawn_app;

#[tokio::test]
async fn liveness_endpoints_answer_with_their_status_words() {
    let app = spawn_app().await;
    for (path, word) in [
        ("/health", "healthy"),
        ("/healthz", "alive"),
        ("/readyz", "ready"),
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], word, "{path}");
    }
}

#[tokio::test]
async fn readyz_is_503_naming_the_database_when_it_is_gone() {
    let app = spawn_app().await;
    app.pool.close().await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["error"], "database unavailable");
    assert!(
        body.get("details").is_none(),
        "no error text for anonymous callers: {body}"
    );
    let response = app.get("/readyz", &app.viewer).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(body["details"]["database"].is_string(), "{body}");
    // Liveness does not depend on the database.
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn api_answers_503_not_500_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.pool.close().await;
    let response = app.get("/api/devices", &app.viewer).await;
    crate::harness::assert_error(response, 503).await;
}
