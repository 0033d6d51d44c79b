//! The operator's kit against a real devicehub: every series the alert rules and the Grafana
//! dashboards use is exported; every InfluxQL query of the dashboards returns rows from data fed
//! through devicehub into the test InfluxDB; the InfluxDB template's Flux queries refer only to
//! what devicehub writes; sink lag shows a store that is down; and JSON logs carry the request id
//! each response returns. (promtool and the Kubernetes checks run in scripts/check-ops.sh.)

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use regex::Regex;
use serde_json::{json, Value};

use crate::harness::Device;
use crate::harness::{collector_settings, metric_sample, spawn_app, spawn_app_with, TestApp};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const INFLUX_UID: &str = "devicehub-influxdb";
const PROMETHEUS_UID: &str = "devicehub-prometheus";

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Grafana dashboards, by file name.
fn dashboards() -> Vec<(String, Value)> {
    let dir = Path::new(ROOT).join("config/dashboards/grafana");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "fleet, device and service dashboards");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let board = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, board)
        })
        .collect()
}

/// Every query target of a dashboard (panels and the panels of collapsed rows), with its
/// panel's title.
fn targets(board: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let panels = board["panels"].as_array().unwrap();
    for panel in panels.iter().chain(
        panels
            .iter()
            .flat_map(|p| p["panels"].as_array().into_iter().flatten()),
    ) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((panel["title"].as_str().unwrap().to_owned(), target.clone()));
        }
    }
    out
}

fn uid(datasource: &Value) -> &str {
    datasource["uid"].as_str().unwrap_or_default()
}

/// The PromQL of the alert rules and the dashboards.
fn prometheus_expressions() -> Vec<String> {
    let mut exprs: Vec<String> = read("config/prometheus/alerts.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr: "))
        .map(str::to_owned)
        .collect();
    assert!(exprs.len() >= 10, "the rules file has its alerts");
    for (_, board) in dashboards() {
        for (_, target) in targets(&board) {
            if uid(&target["datasource"]) == PROMETHEUS_UID {
                exprs.push(target["expr"].as_str().unwrap().to_owned());
            }
        }
    }
    exprs
}

/// The sample names of an exposition (`name{labels} value` and `name value` lines).
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_series_the_rules_and_dashboards_use_is_exported() {
    let mut settings = collector_settings();
    settings
        .roles
        .push(devicehub::configuration::ProcessRole::Analytics);
    let app = spawn_app_with(settings).await;
    let answer = app
        .client
        .get(app.url("/api/devices"))
        .bearer_auth(&app.viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let id = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let missing = app
        .client
        .get(app.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-request-id"));

    let text = app.scrape().await;
    let names = exported(&text);
    let series = Regex::new(r"devicehub_[a-z0-9_]+").unwrap();
    let mut used = BTreeSet::new();
    for expr in prometheus_expressions() {
        used.extend(series.find_iter(&expr).map(|m| m.as_str().to_owned()));
    }
    let absent: Vec<&String> = used.iter().filter(|n| !names.contains(*n)).collect();
    assert!(absent.is_empty(), "not exported: {absent:?}\n{text}");
    assert!(used.len() >= 25, "{used:?}");

    // The request above, by its route pattern; the 404 under `unmatched`, not its path.
    let requests =
        r#"devicehub_http_requests_total{method="GET",route="/api/devices",status="200"}"#;
    assert_eq!(metric_sample(&text, requests), Some(1.0), "{text}");
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(!text.contains("/no/such/page"));
    for sink in ["influxdb", "archive", "registry"] {
        let lag = format!("devicehub_sink_lag_records{{sink=\"{sink}\"}}");
        assert_eq!(metric_sample(&text, &lag), Some(0.0), "{lag}\n{text}");
    }
    let fill = metric_sample(&text, "devicehub_journal_fill_ratio").unwrap();
    assert!((0.0..0.01).contains(&fill), "{fill}");
    assert_eq!(
        metric_sample(&text, "devicehub_journal_max_bytes"),
        Some(1_073_741_824.0)
    );
    assert_eq!(
        metric_sample(&text, r#"devicehub_mqtt_connected{client="publisher"}"#),
        Some(1.0)
    );
    // The collector's own connection comes up beside the publisher's.
    let connected = r#"devicehub_mqtt_connected{client="collector"}"#;
    let mut text = text;
    for _ in 0..50 {
        if metric_sample(&text, connected) == Some(1.0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = app.scrape().await;
    }
    panic!("the collector never showed as connected:\n{text}");
}

#[tokio::test]
async fn fleet_gauges_count_devices_by_connection_and_open_alerts_by_severity() {
    let app = spawn_app().await;
    app.register("on-1").await;
    app.register("off-1").await;
    for (device, status) in [("on-1", "online"), ("off-1", "offline")] {
        sqlx::query("UPDATE devices SET connection_status = $2 WHERE device_id = $1")
            .bind(device)
            .bind(status)
            .execute(&app.pool)
            .await
            .unwrap();
    }
    app.raise_alert("on-1", "critical").await;
    app.raise_alert("off-1", "critical").await;
    app.raise_alert("off-1", "info").await;
    let expected = [
        (r#"devicehub_devices_connection{status="online"}"#, 1.0),
        (r#"devicehub_devices_connection{status="offline"}"#, 1.0),
        (r#"devicehub_devices_connection{status="unknown"}"#, 0.0),
        (
            r#"devicehub_alerts_open_by_severity{severity="critical"}"#,
            2.0,
        ),
        (r#"devicehub_alerts_open_by_severity{severity="info"}"#, 1.0),
        (
            r#"devicehub_alerts_open_by_severity{severity="warning"}"#,
            0.0,
        ),
    ];
    // The gauges are refreshed on a timer (every 15 s), not by the scrape.
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    let mut text = app.scrape().await;
    while expected
        .iter()
        .any(|(line, v)| metric_sample(&text, line) != Some(*v))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the fleet gauges never showed the fleet:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        text = app.scrape().await;
    }
    // A scrape runs no query: it answers while the registry's tables are locked.
    let mut lock = app.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE devices, alerts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    for _ in 0..20 {
        let scraped = tokio::time::timeout(Duration::from_secs(2), app.scrape()).await;
        assert!(scraped.is_ok(), "a scrape waited on the registry");
    }
    lock.rollback().await.unwrap();
}

#[tokio::test]
async fn a_sink_whose_store_is_down_shows_its_lag_in_records_and_seconds() {
    let mut settings = collector_settings();
    // Nothing listens there: every InfluxDB write fails and is retried.
    settings.influxdb.url = format!("http://127.0.0.1:{}", crate::harness::services::free_port());
    let app = spawn_app_with(settings).await;
    app.register("lagging").await;
    let device = Device::connect(&[], None).await;
    for seq in 0..3 {
        device
            .publish_json(
                &app.topic("lagging", "telemetry"),
                &json!({"v": 2, "device_id": "lagging", "ts": Utc::now().to_rfc3339(), "seq": seq,
                        "msg_type": "telemetry",
                        "measurements": [{"ts": Utc::now().to_rfc3339(), "type": "power", "val": 5.0, "unit": "W"}]}),
            )
            .await;
    }
    let influx_records = r#"devicehub_sink_lag_records{sink="influxdb"}"#;
    let influx_seconds = r#"devicehub_sink_lag_seconds{sink="influxdb"}"#;
    let archive_records = r#"devicehub_sink_lag_records{sink="archive"}"#;
    let mut text = String::new();
    for _ in 0..100 {
        text = app.scrape().await;
        let lagging = metric_sample(&text, influx_records) == Some(3.0)
            && metric_sample(&text, influx_seconds).is_some_and(|s| s >= 1.0)
            && metric_sample(&text, archive_records) == Some(0.0);
        if lagging {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the InfluxDB sink's lag never showed:\n{text}");
}

/// Runs an InfluxQL query against the test app's InfluxDB database.
async fn influxql(app: &TestApp, query: &str) -> Value {
    let answer = app
        .client
        .get(format!("{}/query", app.settings.influxdb.url))
        .query(&[
            ("db", app.settings.influxdb.database.as_str()),
            ("q", query),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{query}");
    let body: Value = answer.json().await.unwrap();
    assert!(body["results"][0]["error"].is_null(), "{query}: {body}");
    body
}

/// The non-null values of a query's answer.
fn values(body: &Value) -> Vec<Value> {
    body["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["values"].as_array().unwrap().iter())
        .flat_map(|row| row.as_array().unwrap().iter().skip(1).cloned())
        .filter(|v| !v.is_null())
        .collect()
}

#[tokio::test]
async fn every_influxql_query_of_the_grafana_dashboards_returns_rows_from_devicehubs_data() {
    let app = spawn_app_with(collector_settings()).await;
    app.register_with(
        json!({"device_id": "plug-1", "device_name": "Plug", "device_type": "smart_plug"}),
    )
    .await;
    app.register_with(
        json!({"device_id": "meter-1", "device_name": "Meter", "device_type": "energy_meter"}),
    )
    .await;
    let device = Device::connect(&[], None).await;
    let now = Utc::now();
    for i in 0..6i64 {
        let ts = (now - chrono::Duration::seconds(60 - 10 * i)).to_rfc3339();
        // A plug's v2 envelope: power and a cumulative energy counter.
        device
            .publish_json(
                &app.topic("plug-1", "telemetry"),
                &json!({"v": 2, "device_id": "plug-1", "ts": ts, "seq": i, "msg_type": "telemetry",
                        "measurements": [
                            {"ts": ts, "type": "power", "val": 100.0 + i as f64, "unit": "W"},
                            {"ts": ts, "type": "energy", "val": 1000.0 + 10.0 * i as f64, "unit": "Wh"}]}),
            )
            .await;
        // A seed 002 meter: flat power_usage and per-interval energy.
        device
            .publish_json(
                &app.topic("meter-1", "telemetry"),
                &json!({"timestamp": ts, "device_id": "meter-1", "power_usage": 500.0,
                        "energy_consumption_wh": 10.0}),
            )
            .await;
    }
    for _ in 0..100 {
        let count = influxql(&app, r#"SELECT count("value") FROM "iot_telemetry""#).await;
        if values(&count).first().and_then(Value::as_f64) == Some(24.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let substitute = |query: &str, metric: &str| {
        query
            .replace("$timeFilter", "time > now() - 1h")
            .replace("$__interval", "30s")
            .replace("$device_id", "plug-1")
            .replace("$metric", metric)
    };
    let unknown_variable = Regex::new(r"\$[A-Za-z_]").unwrap();
    let mut ran = 0;
    for (name, board) in dashboards() {
        // The template variables first: the device dashboard's metric comes from them.
        let mut metric = String::new();
        for variable in board["templating"]["list"].as_array().unwrap() {
            if uid(&variable["datasource"]) != INFLUX_UID {
                continue;
            }
            let query = substitute(variable["query"].as_str().unwrap(), &metric);
            let found = values(&influxql(&app, &query).await);
            assert!(
                !found.is_empty(),
                "{name}: variable {}: {query}",
                variable["name"]
            );
            if variable["name"] == "metric" {
                metric = found[0].as_str().unwrap().to_owned();
            }
            ran += 1;
        }
        for (title, target) in targets(&board) {
            if uid(&target["datasource"]) != INFLUX_UID {
                continue;
            }
            let query = substitute(target["query"].as_str().unwrap(), &metric);
            assert!(
                !unknown_variable.is_match(&query),
                "{name}: {title}: unknown variable in {query}"
            );
            let body = influxql(&app, &query).await;
            assert!(
                !values(&body).is_empty(),
                "{name}: {title}: no rows for {query}\n{body}"
            );
            ran += 1;
        }
    }
    assert!(ran >= 12, "{ran} queries");
    // Power by device type sums the devices' mean power per interval: 500 W for the meter.
    let power = dashboards()
        .into_iter()
        .flat_map(|(_, b)| targets(&b))
        .find(|(title, _)| title == "Power by device type")
        .unwrap()
        .1;
    let body = influxql(&app, &substitute(power["query"].as_str().unwrap(), "")).await;
    let meter = body["results"][0]["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["tags"]["device_type"] == "energy_meter")
        .expect("an energy_meter series");
    assert!(meter["values"]
        .as_array()
        .unwrap()
        .iter()
        .all(|row| row[1] == 500.0));
}

#[test]
fn the_dashboards_and_the_influxdb_template_refer_only_to_what_devicehub_writes() {
    let provisioned = read("config/grafana/provisioning/datasources/devicehub.yml");
    for uid in [INFLUX_UID, PROMETHEUS_UID] {
        assert!(provisioned.contains(&format!("uid: {uid}")), "{uid}");
    }
    let settings = devicehub::configuration::Settings::load(None).unwrap();
    let measurement = devicehub::stores::influxdb::MEASUREMENT;
    let mut influxql_text = String::new();
    for (name, board) in dashboards() {
        let mut ids = BTreeSet::new();
        for panel in board["panels"].as_array().unwrap() {
            assert!(
                ids.insert(panel["id"].as_i64().unwrap()),
                "{name}: panel ids"
            );
            let grid = &panel["gridPos"];
            let right = grid["x"].as_i64().unwrap() + grid["w"].as_i64().unwrap();
            assert!(right <= 24, "{name}: {} overflows the grid", panel["title"]);
        }
        for (title, target) in targets(&board) {
            let source = uid(&target["datasource"]);
            assert!(
                [INFLUX_UID, PROMETHEUS_UID].contains(&source),
                "{name}: {title}: {source}"
            );
            if source == INFLUX_UID {
                let query = target["query"].as_str().unwrap();
                assert!(
                    query.contains(&format!("FROM \"{measurement}\"")),
                    "{name}: {title}"
                );
                influxql_text.push_str(query);
            }
        }
    }

    // The InfluxDB 2 template (influx apply -f). Its Flux cannot run here (no InfluxDB 2 on this
    // machine's registries): every query reads devicehub's bucket, measurement and field, uses
    // only its tags and the template's variables, and names only metrics the InfluxQL
    // dashboards (whose queries return rows above) also use.
    let template: Value =
        serde_json::from_str(&read("config/dashboards/influxdb/devicehub.json")).unwrap();
    let resources = template.as_array().unwrap();
    let variables: BTreeSet<String> = resources
        .iter()
        .filter(|r| r["kind"] == "Variable")
        .map(|r| r["spec"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        variables,
        BTreeSet::from(["device_id".into(), "metric".into()])
    );
    let mut flux = Vec::new();
    for r in resources {
        assert_eq!(r["apiVersion"], "influxdata.com/v2alpha1");
        match r["kind"].as_str().unwrap() {
            "Variable" => flux.push(r["spec"]["query"].as_str().unwrap().to_owned()),
            "Dashboard" => {
                let charts = r["spec"]["charts"].as_array().unwrap();
                assert!(charts.len() >= 4, "{}", r["metadata"]["name"]);
                for chart in charts {
                    for q in chart["queries"].as_array().unwrap() {
                        flux.push(q["query"].as_str().unwrap().to_owned());
                    }
                }
            }
            other => panic!("unexpected kind {other}"),
        }
    }
    let bucket = format!("bucket: \"{}\"", settings.influxdb.bucket);
    let record = Regex::new(r"\br\.([A-Za-z_]+)").unwrap();
    let var = Regex::new(r"\bv\.([A-Za-z_]+)").unwrap();
    let metric = Regex::new(r#"r\.metric == "([^"]+)""#).unwrap();
    for query in &flux {
        assert!(query.contains(&bucket), "{query}");
        assert!(
            query.contains(&format!("r._measurement == \"{measurement}\"")),
            "{query}"
        );
        for m in record.captures_iter(query) {
            let column = &m[1];
            assert!(
                [
                    "_measurement",
                    "_field",
                    "device_id",
                    "metric",
                    "unit",
                    "device_type"
                ]
                .contains(&column),
                "r.{column} is not a column devicehub writes: {query}"
            );
        }
        for m in var.captures_iter(query) {
            let name = &m[1];
            assert!(
                variables.contains(name)
                    || ["timeRangeStart", "timeRangeStop", "windowPeriod"].contains(&name),
                "v.{name}: {query}"
            );
        }
        for m in metric.captures_iter(query) {
            assert!(
                influxql_text.contains(&format!("'{}'", &m[1])),
                "metric {}",
                &m[1]
            );
        }
        if !query.contains("schema.tagValues") {
            assert!(query.contains("r._field == \"value\""), "{query}");
        }
    }
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_request_id_the_response_returns() {
    let app = spawn_app().await;
    let (mut command, port) = crate::harness::binary(&app, "logs");
    let mut child = command
        .env("DEVICEHUB__LOG__FORMAT", "json")
        .env("DEVICEHUB__LOG__LEVEL", "info,devicehub::access=debug")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let mut answer = None;
    for _ in 0..100 {
        if let Ok(a) = client.get(&url).send().await {
            answer = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = answer.expect("devicehub answers");
    assert_eq!(answer.status(), 200);
    let id = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let access = loop {
        let line = received
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or_else(|_| panic!("no access log line for {id} in:\n{}", seen.join("\n")));
        let object: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        for field in ["timestamp", "level", "target"] {
            assert!(object.get(field).is_some(), "{field} missing: {line}");
        }
        seen.push(line);
        if object["target"] == "devicehub::access" && object["route"] == "/healthz" {
            break object;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(access["status"], 200);
    assert_eq!(access["method"], "GET");
    assert_eq!(access["level"], "DEBUG");
    // The request's span: its id is the header's.
    let span = access["span"].to_string();
    assert!(span.contains(&id), "request id {id} not in {access}");
}

/// At the shipped log level a terminal stays readable: health checks, scrapes and the console's
/// polling print nothing (a line per request is `devicehub::access=debug`, tested above).
#[tokio::test]
async fn probes_scrapes_and_console_polling_print_no_line_at_the_shipped_log_level() {
    let app = spawn_app().await;
    let (mut command, port) = crate::harness::binary(&app, "quiet");
    let mut child = command
        .env_remove("DEVICEHUB__LOG__LEVEL")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut outputs = Vec::new();
    for stream in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let (lines, received) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        outputs.push(received);
    }
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let drain = |outputs: &[std::sync::mpsc::Receiver<String>]| -> Vec<String> {
        outputs
            .iter()
            .flat_map(|r| r.try_iter().collect::<Vec<_>>())
            .collect()
    };
    let start_up = drain(&outputs);
    assert!(!start_up.is_empty(), "devicehub logged nothing at start");
    // What probes, Prometheus and an open console ask, many times over.
    for _ in 0..20 {
        for path in ["/healthz", "/readyz", "/health", "/metrics"] {
            client.get(format!("{base}{path}")).send().await.unwrap();
        }
        for path in [
            "/api/stats",
            "/api/alerts?limit=5",
            "/api/devices?limit=25",
            "/api/auth/me",
        ] {
            let answer = client
                .get(format!("{base}{path}"))
                .bearer_auth(&app.viewer)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200, "{path}");
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = drain(&outputs);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        during.is_empty(),
        "160 requests printed {} lines:\n{}",
        during.len(),
        during.join("\n")
    );
}

/// 64 scrapers in a loop beside API reads on a pool of two connections: a scrape takes no
/// connection, so every read is answered (before, each scrape's three aggregate queries took the
/// pool and reads got 503 once they waited out `database.acquire_timeout_secs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_parallel_scrapers_leave_the_pool_to_the_api() {
    let mut settings = crate::harness::test_settings();
    settings.database.max_connections = 2;
    settings.database.acquire_timeout_secs = 1;
    let app = spawn_app_with(settings).await;
    for i in 0..20 {
        app.register(&format!("scraped-{i:02}")).await;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scrapers: Vec<_> = (0..64)
        .map(|_| {
            let (client, url, stop) = (app.client.clone(), app.url("/metrics"), stop.clone());
            tokio::spawn(async move {
                let mut scrapes = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let answer = client.get(&url).send().await.unwrap();
                    assert_eq!(answer.status(), 200);
                    answer.bytes().await.unwrap();
                    scrapes += 1;
                }
                scrapes
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for _ in 0..100 {
        statuses.push(
            app.get("/api/devices?limit=50", &app.viewer)
                .await
                .status()
                .as_u16(),
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut scrapes = 0;
    for scraper in scrapers {
        scrapes += scraper.await.unwrap();
    }
    assert!(scrapes >= 64, "{scrapes} scrapes");
    assert!(
        statuses.iter().all(|s| *s == 200),
        "API reads answered {:?} beside {scrapes} scrapes",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
}
