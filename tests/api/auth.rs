use devicehub::domain::Role;
use devicehub::startup::Application;
use jsonwebtoken::{encode, EncodingKey, Header};
use reqwest::Method;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, spawn_app_with, test_settings, TEST_SECRET};

/// Every `/api` route with a body that would be valid, so that only auth decides the outcome.
fn api_routes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/api/devices", None),
        (
            Method::POST,
            "/api/devices",
            Some(json!({"device_id": "x1", "device_name": "X"})),
        ),
        (Method::GET, "/api/devices/d1", None),
        (
            Method::PUT,
            "/api/devices/d1",
            Some(json!({"device_name": "Y"})),
        ),
        (Method::DELETE, "/api/devices/d1", None),
        (Method::POST, "/api/devices/d1/heartbeat", None),
        (Method::GET, "/api/devices/d1/status", None),
        (Method::GET, "/api/devices/d1/configs", None),
        (
            Method::PUT,
            "/api/devices/d1/configs/k",
            Some(json!({"value": 1})),
        ),
        (Method::DELETE, "/api/devices/d1/configs/k", None),
        (Method::GET, "/api/devices/d1/alerts", None),
        (
            Method::POST,
            "/api/devices/d1/alerts",
            Some(json!({"alert_type": "t", "severity": "info"})),
        ),
        (Method::GET, "/api/alerts", None),
        (Method::POST, "/api/alerts/1/acknowledge", None),
        (Method::GET, "/api/devices/d1/events", None),
        (Method::GET, "/api/stats", None),
        (Method::GET, "/api/devices/d1/metrics", None),
        (Method::GET, "/api/devices/d1/raw-data", None),
        (Method::GET, "/api/devices/d1/commands", None),
        (
            Method::POST,
            "/api/devices/d1/commands",
            Some(json!({"cmd": "reboot"})),
        ),
    ]
}

async fn call(
    app: &crate::helpers::TestApp,
    method: &Method,
    path: &str,
    body: &Option<Value>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut request = app.request(method.clone(), path, token);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn every_api_route_is_401_without_a_token() {
    let app = spawn_app().await;
    for (method, path, body) in api_routes() {
        let response = call(&app, &method, path, &body, None).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer",
            "{method} {path}"
        );
        let body = assert_error(response, 401).await;
        assert_eq!(
            body["details"]["reason"], "missing Authorization header",
            "{method} {path}"
        );
    }
}

#[tokio::test]
async fn garbage_and_foreign_tokens_are_401() {
    let app = spawn_app().await;
    let foreign = TokenIssuerFor::other()
        .issue("mallory", Role::Admin)
        .unwrap();
    for token in ["not-a-jwt", "a.b.c", foreign.as_str()] {
        let response = app.get("/api/devices", token).await;
        let body = assert_error(response, 401).await;
        assert_eq!(body["details"]["reason"], "invalid token");
    }
    let response = app
        .client
        .get(app.url("/api/devices"))
        .header("Authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_error(response, 401).await;
}

struct TokenIssuerFor;
impl TokenIssuerFor {
    fn other() -> devicehub::auth::TokenIssuer {
        devicehub::auth::TokenIssuer::new(&SecretString::from("another-secret-".repeat(3)), 3600)
    }
}

#[tokio::test]
async fn expired_token_is_401_saying_it_expired() {
    let app = spawn_app().await;
    let claims = json!({"sub": "ann", "role": "admin", "iat": 1, "exp": 2, "iss": "devicehub"});
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap();
    let body = assert_error(app.get("/api/devices", &token).await, 401).await;
    assert_eq!(body["details"]["reason"], "token expired");
}

#[tokio::test]
async fn login_returns_a_bearer_token_that_opens_the_api() {
    let app = spawn_app().await;
    app.add_user("ann", "correct horse battery", Role::Viewer)
        .await;
    let response = app
        .client
        .post(app.url("/api/auth/login"))
        .json(&json!({"username": "ann", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(app.get("/api/devices", token).await.status(), 200);
    // The token carries the user's role: a viewer cannot register devices.
    let response = app
        .post_json(
            "/api/devices",
            token,
            &json!({"device_id": "d", "device_name": "D"}),
        )
        .await;
    assert_error(response, 403).await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    app.add_user("ann", "correct horse battery", Role::Admin)
        .await;
    let mut messages = Vec::new();
    for (user, password) in [("ann", "wrong password"), ("bob", "correct horse battery")] {
        let response = app
            .client
            .post(app.url("/api/auth/login"))
            .json(&json!({"username": user, "password": password}))
            .send()
            .await
            .unwrap();
        messages.push(assert_error(response, 401).await);
    }
    assert_eq!(messages[0], messages[1]);
}

#[tokio::test]
async fn malformed_login_bodies_are_rejected_with_json() {
    let app = spawn_app().await;
    let url = app.url("/api/auth/login");
    let response = app
        .client
        .post(&url)
        .json(&json!({"username": "ann"}))
        .send()
        .await
        .unwrap();
    assert_error(response, 422).await;
    let response = app
        .client
        .post(&url)
        .json(&json!({"username": "", "password": "x"}))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 422).await;
    assert!(body["details"]["username"].is_array(), "{body}");
    let response = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_error(response, 400).await;
}

#[tokio::test]
async fn login_is_rate_limited_per_client() {
    let mut settings = test_settings();
    settings.auth.login_attempts_per_minute = 3;
    let app = spawn_app_with(settings).await;
    let attempt = || {
        app.client
            .post(app.url("/api/auth/login"))
            .json(&json!({"username": "nobody", "password": "wrong password"}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt().await.unwrap().status(), 401);
    }
    let response = attempt().await.unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_error(response, 429).await;
}

#[tokio::test]
async fn viewer_reads_everything_but_every_write_is_403() {
    let app = spawn_app().await;
    app.register("d1").await;
    for (method, path, body) in api_routes() {
        let response = call(&app, &method, path, &body, Some(&app.viewer)).await;
        if method == Method::GET {
            assert_eq!(response.status(), 200, "{method} {path}");
        } else {
            let body = assert_error(response, 403).await;
            assert!(body["details"]["reason"].as_str().unwrap().contains("role"));
        }
    }
}

#[tokio::test]
async fn operator_operates_devices_but_cannot_manage_them() {
    let app = spawn_app().await;
    app.register("d1").await;
    let alert = app.raise_alert("d1", "info").await;
    let alert_path = format!("/api/alerts/{}/acknowledge", alert["id"]);
    let allowed: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/api/devices/d1/heartbeat".into(), None),
        (
            Method::PUT,
            "/api/devices/d1/configs/k".into(),
            Some(json!({"value": 1})),
        ),
        (Method::DELETE, "/api/devices/d1/configs/k".into(), None),
        (
            Method::POST,
            "/api/devices/d1/alerts".into(),
            Some(json!({"alert_type": "t", "severity": "info"})),
        ),
        (Method::POST, alert_path, None),
    ];
    for (method, path, body) in &allowed {
        let response = call(&app, method, path, body, Some(&app.operator)).await;
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
    }
    for (method, path, body) in [
        (
            Method::POST,
            "/api/devices",
            Some(json!({"device_id": "x1", "device_name": "X"})),
        ),
        (
            Method::PUT,
            "/api/devices/d1",
            Some(json!({"device_name": "Y"})),
        ),
        (Method::DELETE, "/api/devices/d1", None),
    ] {
        let response = call(&app, &method, path, &body, Some(&app.operator)).await;
        assert_error(response, 403).await;
    }
}

#[tokio::test]
async fn with_auth_disabled_anonymous_callers_are_admins() {
    let mut settings = test_settings();
    settings.auth.enabled = false;
    settings.auth.jwt_secret = None;
    let app = spawn_app_with(settings).await;
    let response = app
        .client
        .post(app.url("/api/devices"))
        .json(&json!({"device_id": "lan-1", "device_name": "LAN device"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let response = app
        .client
        .get(app.url("/api/devices/lan-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn service_refuses_to_start_with_auth_on_and_a_short_or_missing_secret() {
    for secret in [None, Some("short-secret")] {
        let mut settings = test_settings();
        settings.auth.jwt_secret = secret.map(SecretString::from);
        let error = Application::build(settings).await.err().expect("refused");
        assert!(error.to_string().contains("jwt_secret"), "{error}");
    }
}
