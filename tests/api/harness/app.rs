//! `spawn_app()`: the real application on a random port, against its own freshly created and
//! migrated PostgreSQL database, so tests never share state and run in parallel.

use devicehub::auth::{hash_password, Session, TokenIssuer};
use devicehub::configuration::Settings;
use devicehub::domain::Role;
use devicehub::registry::users;
use devicehub::startup::Application;
use reqwest::{Method, RequestBuilder, Response};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use sqlx::PgPool;

pub const TEST_SECRET: &str = "test-only-secret-0123456789-abcdefghijklmnop";

pub struct TestApp {
    pub address: String,
    pub pool: PgPool,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub admin: String,
    pub operator: String,
    pub viewer: String,
}

/// Settings for a test app: a unique database on the configured server, port 0, auth on.
pub fn test_settings() -> Settings {
    let mut settings = Settings::load(None).expect("settings load");
    let base = std::env::var("DEVICEHUB_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let name = format!("devicehub_test_{}", uuid::Uuid::new_v4().simple());
    settings.database.url = SecretString::from(format!("{}/{name}", base.trim_end_matches('/')));
    settings.database.max_connections = 4;
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.http.workers = 1;
    settings.auth.enabled = true;
    settings.auth.jwt_secret = Some(SecretString::from(TEST_SECRET));
    settings.roles = vec![devicehub::configuration::ProcessRole::Api];
    // Everything a test writes outside PostgreSQL is its own: topics, InfluxDB database, files.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let scratch = std::env::temp_dir().join(format!("devicehub-test-{tag}"));
    settings.mqtt.client_id = format!("devicehub-test-{tag}");
    settings.mqtt.iot_prefix = format!("t{tag}/iot");
    settings.mqtt.qs_prefix = format!("t{tag}/qs/v1");
    settings.mqtt.deadletter_topic = format!("t{tag}/deadletter");
    settings.influxdb.api = devicehub::configuration::InfluxApi::V1;
    settings.influxdb.url = std::env::var("DEVICEHUB_TEST_INFLUXDB_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8086".into());
    settings.influxdb.database = format!("devicehub_test_{tag}");
    settings.influxdb.batch.timeout_ms = 100;
    settings.archive.dir = scratch.join("archive");
    settings.archive.batch.timeout_ms = 1000;
    settings.collector.journal_dir = scratch.join("journal");
    settings.analytics.work_dir = scratch.join("analytics");
    settings
}

/// The S3 server the test script starts (s3s-fs), with its development keys.
pub const TEST_S3_ACCESS_KEY: &str = "devicehub-dev";
pub const TEST_S3_SECRET_KEY: &str = "devicehub-dev-secret";

/// S3 settings for a bucket of the test's own on the test S3 server (or `endpoint`).
pub fn s3_settings(endpoint: Option<String>) -> devicehub::configuration::S3Settings {
    let mut s3 = Settings::load(None).expect("settings load").s3;
    s3.endpoint = Some(endpoint.unwrap_or_else(|| {
        std::env::var("DEVICEHUB_TEST_S3_URL").unwrap_or_else(|_| "http://127.0.0.1:8014".into())
    }));
    s3.bucket = format!("dh-test-{}", uuid::Uuid::new_v4().simple());
    s3.access_key = Some(SecretString::from(TEST_S3_ACCESS_KEY));
    s3.secret_key = Some(SecretString::from(TEST_S3_SECRET_KEY));
    s3
}

/// Settings with the collector running too.
pub fn collector_settings() -> Settings {
    let mut settings = test_settings();
    settings
        .roles
        .push(devicehub::configuration::ProcessRole::Collector);
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_settings()).await
}

pub async fn spawn_app_with(settings: Settings) -> TestApp {
    let app = Application::build(settings.clone())
        .await
        .expect("application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let pool = app.pool().clone();
    tokio::spawn(app.run_until_stopped());
    // Ready means PostgreSQL, the broker, InfluxDB and the archive all answer.
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("{address}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The tokens' users exist (a token of a user that does not is refused); nobody logs in as
    // them, so their hash is a placeholder. A second app on the same database finds them.
    for (name, role) in [
        ("test-admin", Role::Admin),
        ("test-operator", Role::Operator),
        ("test-viewer", Role::Viewer),
    ] {
        match users::create(&pool, name, "placeholder-never-verified", role).await {
            Ok(_) | Err(devicehub::registry::RegistryError::Conflict(_)) => {}
            Err(e) => panic!("test user {name}: {e}"),
        }
    }
    TestApp {
        admin: token_for(&pool, "test-admin", 3600).await,
        operator: token_for(&pool, "test-operator", 3600).await,
        viewer: token_for(&pool, "test-viewer", 3600).await,
        address,
        pool,
        client: reqwest::Client::new(),
        settings,
    }
}

/// An access token of the test secret for `username`, under the user's token generation now,
/// without a login (as a tool would make one).
pub async fn token_for(pool: &PgPool, username: &str, ttl_secs: u64) -> String {
    let state = users::token_state(pool, username)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no user {username}"));
    TokenIssuer::new(&SecretString::from(TEST_SECRET), ttl_secs)
        .issue(&Session {
            username: username.to_owned(),
            role: state.role,
            generation: state.generation,
            login: None,
        })
        .unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token))
            .send()
            .await
            .unwrap()
    }

    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Response {
        self.request(method, path, Some(token))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> Response {
        self.send_json(Method::POST, path, token, body).await
    }

    pub async fn post_empty(&self, path: &str, token: &str) -> Response {
        self.request(Method::POST, path, Some(token))
            .send()
            .await
            .unwrap()
    }

    /// Registers a device as admin and returns the stored JSON.
    pub async fn register(&self, device_id: &str) -> Value {
        self.register_with(
            json!({"device_id": device_id, "device_name": format!("Device {device_id}")}),
        )
        .await
    }

    pub async fn register_with(&self, body: Value) -> Value {
        let response = self.post_json("/api/devices", &self.admin, &body).await;
        assert_eq!(response.status(), 201, "registering {body}");
        response.json().await.unwrap()
    }

    pub async fn raise_alert(&self, device_id: &str, severity: &str) -> Value {
        let response = self
            .post_json(
                &format!("/api/devices/{device_id}/alerts"),
                &self.operator,
                &json!({"alert_type": "high_temperature", "severity": severity, "message": "hot"}),
            )
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// Adds a user the way the CLI does (argon2 hash in PostgreSQL).
    /// Logs `username` in: its access and refresh tokens.
    pub async fn log_in(&self, username: &str, password: &str) -> (String, String) {
        let response = self
            .client
            .post(self.url("/api/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{username}");
        let body: Value = response.json().await.unwrap();
        (
            body["access_token"].as_str().unwrap().to_owned(),
            body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn add_user(&self, username: &str, password: &str, role: Role) {
        let hash = hash_password(&SecretString::from(password.to_owned())).unwrap();
        users::create(&self.pool, username, &hash, role)
            .await
            .unwrap();
    }

    pub fn topic(&self, device: &str, kind: &str) -> String {
        format!("{}/{device}/{kind}", self.settings.mqtt.iot_prefix)
    }

    pub fn qs_topic(&self, device: &str, kind: &str) -> String {
        format!("{}/{device}/{kind}", self.settings.mqtt.qs_prefix)
    }

    /// Polls `GET path` until `done` accepts the JSON body, for at most `secs`.
    pub async fn eventually(&self, path: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let body: Value = self
                .get(path, &self.viewer)
                .await
                .json()
                .await
                .unwrap_or(Value::Null);
            if done(&body) {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path} did not get there within {secs} s: {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The text of `GET /metrics`.
    pub async fn scrape(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn database_url(&self) -> String {
        self.settings.database.url.expose_secret().to_owned()
    }
}

/// Asserts the status and the JSON error body, returning the body.
pub async fn assert_error(response: Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("error body is JSON");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "no error message: {text}"
    );
    body
}

/// The value of the sample `line` (`name{labels}`) in a `/metrics` exposition `text`.
pub fn metric_sample(text: &str, line: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
