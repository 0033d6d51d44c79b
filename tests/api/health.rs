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

#[tokio::test]
async fn with_a_metrics_token_a_scrape_without_it_gets_401_and_with_it_the_metrics() {
    let mut settings = crate::harness::test_settings();
    settings.metrics.token = Some(secrecy::SecretString::from("a-scrape-token-for-tests"));
    let app = crate::harness::spawn_app_with(settings).await;
    for authorization in [None, Some("Bearer wrong"), Some("a-scrape-token-for-tests")] {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(value) = authorization {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.unwrap();
        let body = crate::harness::assert_error(response, 401).await;
        assert!(
            body["error"].as_str().unwrap_or_default().contains("token")
                || body.to_string().contains("metrics.token"),
            "{body}"
        );
    }
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("a-scrape-token-for-tests")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("devicehub_http_requests"));
    // The probes stay open: orchestrators send no token.
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}
