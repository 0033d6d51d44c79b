//! What the end-to-end tests share: a devicehub of their own (database, topic prefixes,
//! InfluxDB database, archive), the simulated scenario, and the API as the test's admin.
#![allow(dead_code)]

use std::time::Duration;

use devicehub::auth::hash_password;
use devicehub::configuration::{InfluxApi, ProcessRole, Settings};
use devicehub::domain::Role;
use devicehub::registry::users;
use devicehub::startup::Application;
use devicehub_sim::scenario::Scenario;
use secrecy::SecretString;
use serde_json::{json, Value};

pub const PASSWORD: &str = "simulator-test-password";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn settings(tag: &str) -> Settings {
    let mut s = Settings::load(None).unwrap();
    let db = std::env::var("DEVICEHUB_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    s.database.url = SecretString::from(format!("{db}/devicehub_test_{tag}"));
    s.database.max_connections = 4;
    s.http.bind = "127.0.0.1:0".parse().unwrap();
    s.http.workers = 1;
    s.auth.jwt_secret = Some(SecretString::from(
        "simulator-test-secret-0123456789-abcdef",
    ));
    s.roles = vec![ProcessRole::Api, ProcessRole::Collector];
    s.mqtt.url = SecretString::from(broker());
    s.mqtt.client_id = format!("devicehub-simtest-{tag}");
    s.mqtt.iot_prefix = format!("t{tag}/iot");
    s.mqtt.qs_prefix = format!("t{tag}/qs/v1");
    s.mqtt.deadletter_topic = format!("t{tag}/deadletter");
    s.influxdb.api = InfluxApi::V1;
    s.influxdb.url = std::env::var("DEVICEHUB_TEST_INFLUXDB_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8086".into());
    s.influxdb.database = format!("devicehub_test_{tag}");
    s.influxdb.batch.timeout_ms = 100;
    let scratch = std::env::temp_dir().join(format!("devicehub-simtest-{tag}"));
    s.archive.dir = scratch.join("archive");
    s.archive.batch.timeout_ms = 1000;
    s.collector.journal_dir = scratch.join("journal");
    s.analytics.work_dir = scratch.join("analytics");
    s
}

/// Starts devicehub with `settings` and an `admin` user (password [`PASSWORD`]); its base URL.
pub async fn serve(settings: Settings) -> String {
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    users::create(
        app.pool(),
        "admin",
        &hash_password(&SecretString::from(PASSWORD)).unwrap(),
        Role::Admin,
    )
    .await
    .unwrap();
    tokio::spawn(app.run_until_stopped());
    base
}

pub fn broker() -> String {
    std::env::var("DEVICEHUB_TEST_MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into())
}

pub fn scenario(tag: &str, api: &str) -> Scenario {
    let catalog = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/simulator/device_catalog.csv"
    );
    let text = format!(
        r#"
seed = 9
[mqtt]
brokers = ["{broker}"]
iot_prefix = "t{tag}/iot"
qs_prefix = "t{tag}/qs/v1"
[api]
url = "{api}"
username = "admin"
password = "{PASSWORD}"
[[meters]]
prefix = "ac-{tag}"
count = 1
kind = "ac"
sample_interval_ms = 250
send_interval_s = 1
hello_interval_s = 60
loss_probability = 0.3
[[meters]]
prefix = "dc-{tag}"
count = 1
kind = "dc"
sample_interval_ms = 500
send_interval_s = 3
hello_interval_s = 1
[[sensors]]
prefix = "sensor-{tag}"
count = 1
interval_s = 1
[house]
catalog = "{catalog}"
interval_s = 1
alert_probability = 0.2
[[esp32]]
prefix = "esp-{tag}"
count = 1
interval_s = 1
[[shelly]]
id = "shellyplugs-{tag}"
model = "plug"
http = "127.0.0.1:{shelly}"
interval_s = 1
[mikrotik]
http = "127.0.0.1:{router}"
username = "admin"
password = "router-test-password"
"#,
        broker = broker(),
        shelly = free_port(),
        router = free_port(),
    );
    let scenario: Scenario = toml::from_str(&text).unwrap();
    scenario.check().unwrap();
    scenario
}

/// devicehub's API as the test's admin.
pub struct Api {
    pub http: reqwest::Client,
    pub token: String,
}

impl Api {
    pub async fn login(base: &str) -> Self {
        let http = reqwest::Client::new();
        let login: Value = http
            .post(format!("{base}/api/auth/login"))
            .json(&json!({"username": "admin", "password": PASSWORD}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = login["access_token"].as_str().unwrap().to_owned();
        Self { http, token }
    }

    pub async fn get_url(&self, url: String) -> Value {
        self.http
            .get(url)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    }
}

/// Polls `GET path` until `done` accepts the body, for at most `secs`.
pub async fn eventually(api: &Api, url: String, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let body = api.get_url(url.clone()).await;
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} did not get there within {secs} s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

pub fn metric_names(points: &Value) -> std::collections::BTreeSet<String> {
    points
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|x| x["metric"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
