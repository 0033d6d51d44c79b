//! The simulator feeding a real devicehub (in this process, on its own database, topic prefixes,
//! InfluxDB database and archive): after a short run every simulated device is registered,
//! online, has metrics and raw archive objects, and alerts were raised — what `scripts/run.sh`
//! shows a newcomer, checked through the API.

use std::time::Duration;

use devicehub::auth::hash_password;
use devicehub::configuration::{InfluxApi, Role as ServiceRole, Settings};
use devicehub::domain::Role;
use devicehub::registry::users;
use devicehub::startup::Application;
use devicehub_sim::run::{inventory, run_scenario};
use devicehub_sim::scenario::Scenario;
use secrecy::SecretString;
use serde_json::{json, Value};

const PASSWORD: &str = "simulator-test-password";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn settings(tag: &str) -> Settings {
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
    s.roles = vec![ServiceRole::Api, ServiceRole::Collector];
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
    s
}

fn broker() -> String {
    std::env::var("DEVICEHUB_TEST_MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into())
}

fn scenario(tag: &str, api: &str) -> Scenario {
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
struct Api {
    http: reqwest::Client,
    token: String,
}

impl Api {
    async fn login(base: &str) -> Self {
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

    async fn get_url(&self, url: String) -> Value {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_home_and_fleet_show_up_in_devicehub_registered_online_with_data_and_alerts() {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let app = Application::build(settings(&tag)).await.unwrap();
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

    let scenario = scenario(&tag, &base);
    let devices = inventory(&scenario).unwrap().devices;
    assert_eq!(
        devices.len(),
        13,
        "2 meters, 1 sensor, 8 catalog devices, 1 ESP32, 1 Shelly"
    );
    let run = tokio::spawn(run_scenario(
        scenario,
        tokio::time::sleep(Duration::from_secs(60)),
    ));

    let api = Api::login(&base).await;
    let get = |url: String| api.get_url(url);
    let url = |path: &str| format!("{base}{path}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let mut missing = Vec::new();
        for d in &devices {
            let id = &d.device_id;
            let record = get(url(&format!("/api/devices/{id}"))).await;
            let status = get(url(&format!("/api/devices/{id}/status"))).await;
            let points = get(url(&format!("/api/devices/{id}/metrics?start=-5m"))).await;
            let objects = get(url(&format!("/api/devices/{id}/raw-data"))).await;
            let checks = [
                (
                    "registered",
                    record["status"] == "active" && record["device_type"] == d.device_type.as_str(),
                ),
                ("online", status["connection_status"] == "online"),
                ("metrics", points.as_array().is_some_and(|p| !p.is_empty())),
                (
                    "raw data",
                    objects.as_array().is_some_and(|o| !o.is_empty()),
                ),
            ];
            for (what, ok) in checks {
                if !ok {
                    missing.push(format!("{id}: {what}"));
                }
            }
        }
        let alerts = get(url("/api/alerts")).await;
        let alert_types: Vec<&str> = alerts
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["alert_type"].as_str()).collect())
            .unwrap_or_default();
        if alert_types.is_empty() {
            missing.push("an alert".into());
        }
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after 40 s still missing: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!run.is_finished(), "the simulation runs until stopped");
    run.abort();
}

/// A Shelly Pro 4PM polled over HTTP only (its MQTT goes to a broker that is not there), beside
/// a host that does not answer: every channel's power, energy and relay state reach devicehub's
/// metrics through the pipeline, and the poller registers it with what `Shelly.GetDeviceInfo`
/// says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polled_shelly_reports_every_channel_through_the_pipeline() {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let http_port = free_port();
    let id = format!("shellypro4pm-{tag}");
    let mut settings = settings(&tag);
    settings.roles = vec![
        ServiceRole::Api,
        ServiceRole::Collector,
        ServiceRole::Pollers,
    ];
    // A host that is not there, listed first: it must not hold the live one up.
    settings.shelly.hosts = vec![
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{http_port}"),
    ];
    settings.shelly.interval_s = 1;
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

    let text = format!(
        r#"
seed = 3
[mqtt]
brokers = ["mqtt://127.0.0.1:1"]
iot_prefix = "iot"
qs_prefix = "qs/v1"
[[shelly]]
id = "{id}"
model = "pro4pm"
http = "127.0.0.1:{http_port}"
interval_s = 1
"#
    );
    let scenario: Scenario = toml::from_str(&text).unwrap();
    let run = tokio::spawn(run_scenario(
        scenario,
        tokio::time::sleep(Duration::from_secs(60)),
    ));

    let api = Api::login(&base).await;
    let (http, token) = (api.http.clone(), api.token.clone());
    let get = |path: String| api.get_url(format!("{base}{path}"));
    let expected: Vec<String> = (0..4)
        .flat_map(|ch| {
            ["power", "voltage", "current", "energy", "output"].map(|m| format!("switch{ch}.{m}"))
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let points = get(format!("/api/devices/{id}/metrics?start=-5m")).await;
        let metrics: std::collections::BTreeSet<String> = points
            .as_array()
            .map(|p| {
                p.iter()
                    .filter_map(|x| x["metric"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let missing: Vec<&String> = expected.iter().filter(|m| !metrics.contains(*m)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after 30 s no {missing:?} (have {metrics:?})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Relay control: channel 1 off, by the Shelly's HTTP RPC; the next poll shows it.
    let sent: Value = http
        .post(format!("{base}/api/devices/{id}/commands"))
        .bearer_auth(&token)
        .json(&json!({"cmd": "switch_set", "params": {"channel": 1, "on": false}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["status"], "accepted", "{sent}");
    let turned_off = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let points = get(format!(
            "/api/devices/{id}/metrics?start=-5s&metric=switch1.output"
        ))
        .await;
        let last = points
            .as_array()
            .and_then(|p| p.last())
            .map(|p| p["value"].clone());
        if last == Some(json!(0.0)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < turned_off,
            "switch1 still on: {points}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let bad = http
        .post(format!("{base}/api/devices/{id}/commands"))
        .bearer_auth(&token)
        .json(&json!({"cmd": "switch_set", "params": {"channel": 99, "on": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);

    let device = get(format!("/api/devices/{id}")).await;
    assert_eq!(device["device_type"], "shelly", "{device}");
    assert_eq!(device["metadata"]["model"], "SPSW-104PE16EU", "{device}");
    assert_eq!(device["metadata"]["generation"], 2, "{device}");
    assert_eq!(device["metadata"]["polled"], true, "{device}");
    run.abort();
}
