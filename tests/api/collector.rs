//! End to end over the real broker and stores: MQTT in, InfluxDB / archive / PostgreSQL out, read
//! back through the API.

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{
    assert_error, collector_settings, metric_sample, spawn_app_with, Device, TestApp,
};

async fn collector_app() -> TestApp {
    spawn_app_with(collector_settings()).await
}

fn v2_datagram(device: &str, seq: u64, samples: usize) -> Value {
    let now = Utc::now();
    let measurements: Vec<Value> = (0..samples)
        .flat_map(|i| {
            let ts = (now - Duration::seconds((samples - i) as i64)).to_rfc3339();
            [
                json!({"ts": ts, "type": "voltage_dc", "val": 750.0 + i as f64, "unit": "V"}),
                json!({"ts": ts, "type": "current_dc", "val": 100.0 + i as f64, "unit": "A"}),
            ]
        })
        .collect();
    json!({"v": 2, "device_id": device, "ts": now.to_rfc3339(), "seq": seq, "msg_type": "telemetry", "measurements": measurements})
}

fn count(body: &Value) -> usize {
    body.as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn v2_datagram_is_queryable_within_3_seconds_and_archived() {
    let app = collector_app().await;
    app.register("meter-1").await;
    let device = Device::connect(&[], None).await;
    let sent = std::time::Instant::now();
    device
        .publish_json(
            &app.topic("meter-1", "telemetry"),
            &v2_datagram("meter-1", 1, 5),
        )
        .await;
    let points = app
        .eventually(
            "/api/devices/meter-1/metrics?start=-5m&metric=voltage_dc",
            3,
            |b| count(b) == 5,
        )
        .await;
    assert!(sent.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(points[0]["metric"], "voltage_dc");
    assert_eq!(points[0]["unit"], "V");
    assert_eq!(points[0]["device_id"], "meter-1");
    assert_eq!(points[0]["value"], 750.0, "oldest first");
    let all = app
        .get("/api/devices/meter-1/metrics?start=-5m", &app.viewer)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(count(&all), 10);

    let objects = app
        .eventually("/api/devices/meter-1/raw-data", 5, |b| count(b) >= 1)
        .await;
    let filename = objects[0]["filename"].as_str().unwrap();
    assert!(filename.contains("meter-1"), "{filename}");
    let raw: Value = app
        .get(
            &format!("/api/devices/meter-1/raw-data/{filename}"),
            &app.viewer,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(raw[0]["payload"]["seq"], 1, "the payload as received");

    let downsampled = app
        .get(
            "/api/devices/meter-1/metrics?start=-5m&metric=current_dc&every=1h&fn=max",
            &app.viewer,
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert!(count(&downsampled) >= 1);
    assert_eq!(
        downsampled
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].as_f64().unwrap())
            .fold(0.0, f64::max),
        104.0
    );
}

#[tokio::test]
async fn v1_flat_message_of_an_unknown_device_registers_it_and_is_stored() {
    let app = collector_app().await;
    let device = Device::connect(&[], None).await;
    let message = json!({"timestamp": Utc::now().to_rfc3339(), "device_id": "device-001", "temperature": 23.5, "unit": "celsius"});
    device
        .publish_json(&app.topic("device-001", "telemetry"), &message)
        .await;
    let points = app
        .eventually("/api/devices/device-001/metrics?start=-5m", 5, |b| {
            count(b) == 1
        })
        .await;
    assert_eq!(
        (
            points[0]["metric"].as_str(),
            points[0]["value"].as_f64(),
            points[0]["unit"].as_str()
        ),
        (Some("temperature"), Some(23.5), Some("celsius"))
    );
    let registered: Value = app
        .get("/api/devices/device-001", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(registered["status"], "unregistered");
    assert_eq!(registered["connection_status"], "online");
    app.eventually("/api/devices/device-001/raw-data", 5, |b| count(b) == 1)
        .await;
}

#[tokio::test]
async fn hello_sets_the_firmware_version_and_health_metrics() {
    let app = collector_app().await;
    app.register("m2").await;
    let device = Device::connect(&[], None).await;
    let hello = json!({"v": 2, "device_id": "m2", "ts": Utc::now().to_rfc3339(), "seq": 0, "msg_type": "hello",
                       "fw_version": "2.4.1", "uptime_s": 42, "broker_connections": 2, "buf_usage_pct": 1.5});
    device.publish_json(&app.topic("m2", "hello"), &hello).await;
    let status = app
        .eventually("/api/devices/m2/status", 5, |b| b["fw_version"] == "2.4.1")
        .await;
    assert_eq!(status["connection_status"], "online");
    app.eventually(
        "/api/devices/m2/metrics?start=-5m&metric=uptime_s",
        5,
        |b| count(b) == 1,
    )
    .await;
}

#[tokio::test]
async fn status_online_then_the_last_will_sets_offline() {
    let app = collector_app().await;
    app.register("m3").await;
    let topic = app.topic("m3", "status");
    let will = json!({"v": 2, "device_id": "m3", "status": "offline"})
        .to_string()
        .into_bytes();
    let device = Device::connect(&[], Some((topic.clone(), will))).await;
    device
        .publish_json(
            &topic,
            &json!({"v": 2, "device_id": "m3", "status": "online", "ts": Utc::now().to_rfc3339()}),
        )
        .await;
    app.eventually("/api/devices/m3/status", 5, |b| {
        b["connection_status"] == "online"
    })
    .await;
    device.drop_connection();
    app.eventually("/api/devices/m3/status", 10, |b| {
        b["connection_status"] == "offline"
    })
    .await;
}

#[tokio::test]
async fn command_round_trip_ends_accepted_in_the_history() {
    let app = collector_app().await;
    app.register("m4").await;
    let mut device = Device::connect(&[app.topic("m4", "command")], None).await;
    let response = app
        .post_json(
            "/api/devices/m4/commands",
            &app.operator,
            &json!({"cmd": "update_config", "params": {"send_interval_s": 10}}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["status"], "sent");
    let (_, command) = device.next(5).await;
    assert_eq!(command["cmd"], "update_config");
    assert_eq!(command["v"], 2);
    assert_eq!(command["cmd_id"], created["cmd_id"]);
    assert_eq!(command["params"]["send_interval_s"], 10);
    device
        .publish_json(
            &app.topic("m4", "command/ack"),
            &json!({"cmd_id": command["cmd_id"], "result": "accepted", "detail": "cadence 10 s"}),
        )
        .await;
    let history = app
        .eventually("/api/devices/m4/commands", 5, |b| {
            b[0]["status"] == "accepted"
        })
        .await;
    assert_eq!(history[0]["detail"], "cadence 10 s");
    assert_eq!(history[0]["requested_by"], "test-operator");

    let response = app
        .post_json(
            "/api/devices/m4/commands",
            &app.operator,
            &json!({"cmd": "self_destruct"}),
        )
        .await;
    assert_eq!(response.status(), 422);
    let response = app
        .post_json(
            "/api/devices/m4/commands",
            &app.viewer,
            &json!({"cmd": "reboot"}),
        )
        .await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn qs_events_are_stored_once_acked_and_bad_ones_dead_lettered() {
    let app = collector_app().await;
    app.register("esp32-01").await;
    let deadletter = format!("{}/deadletter", app.settings.mqtt.qs_prefix);
    let mut device = Device::connect(&[app.qs_topic("esp32-01", "acks"), deadletter], None).await;
    let event = json!({"schema": 1, "event_id": "esp32-01-1707523200000", "device_id": "esp32-01", "event_type": "temperature",
                       "value": 23.5, "unit": "C", "ts_device": "2026-02-10T00:00:00Z", "meta": {"sensor": "dht22"}});
    let topic = app.qs_topic("esp32-01", "events");
    device.publish_json(&topic, &event).await;
    let (_, ack) = device.next(5).await;
    assert_eq!(
        ack,
        json!({"schema": 1, "event_id": "esp32-01-1707523200000", "device_id": "esp32-01", "status": "stored"})
    );
    device.publish_json(&topic, &event).await;
    let (_, ack) = device.next(5).await;
    assert_eq!(ack["status"], "duplicate");
    device
        .publish_json(
            &topic,
            &json!({"schema": 1, "event_id": "no-type", "device_id": "esp32-01"}),
        )
        .await;
    let (dl_topic, dead) = device.next(5).await;
    assert!(dl_topic.ends_with("/deadletter"));
    assert_eq!(dead["reason"], "missing_field");
    assert_eq!(dead["event_id"], "no-type");
    assert!(dead["topic"].as_str().unwrap().ends_with("esp32-01/events"));

    let events: Value = app
        .get("/api/devices/esp32-01/events", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(count(&events), 1);
    assert_eq!(events[0]["meta"]["sensor"], "dht22");
    // Numeric events are also metrics.
    app.eventually(
        "/api/devices/esp32-01/metrics?start=-3650d&metric=temperature",
        5,
        |b| count(b) == 1,
    )
    .await;
}

#[tokio::test]
async fn duplicate_v2_messages_give_one_set_of_points_and_a_skipped_seq_one_gap_alert() {
    let app = collector_app().await;
    app.register("m5").await;
    let device = Device::connect(&[], None).await;
    let topic = app.topic("m5", "telemetry");
    let first = v2_datagram("m5", 1, 1);
    device.publish_json(&topic, &first).await;
    device.publish_json(&topic, &first).await; // the same message via a second broker
    let mut third = v2_datagram("m5", 3, 1);
    third["measurements"][0]["val"] = json!(800.0);
    device.publish_json(&topic, &third).await;
    device.publish_json(&topic, &third).await;
    app.eventually(
        "/api/devices/m5/metrics?start=-5m&metric=voltage_dc",
        5,
        |b| count(b) == 2,
    )
    .await;
    let alerts = app
        .eventually("/api/devices/m5/alerts", 5, |b| count(b) >= 1)
        .await;
    assert_eq!(count(&alerts), 1);
    assert_eq!(alerts[0]["alert_type"], "sequence_gap");
    assert!(alerts[0]["message"].as_str().unwrap().contains("seq 2"));
    let stats: Value = app
        .get("/api/stats", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["ingest"]["duplicates_dropped"], 2);
}

#[tokio::test]
async fn malformed_payloads_are_dead_lettered_with_a_reason_while_valid_traffic_flows() {
    let app = collector_app().await;
    app.register("m6").await;
    let mut device = Device::connect(
        std::slice::from_ref(&app.settings.mqtt.deadletter_topic),
        None,
    )
    .await;
    let topic = app.topic("m6", "telemetry");
    let far_future = (Utc::now() + Duration::days(30)).to_rfc3339();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "not_json"),
        (b"[1, 2, 3]".to_vec(), "wrong_shape"),
        (
            br#"{"v": 2, "measurements": [{"type": "voltage_dc", "val": "high"}]}"#.to_vec(),
            "wrong_type",
        ),
        (vec![b' '; 1024 * 1024], "too_large"),
        (
            br#"{"device_id": "someone-else", "temperature": 1}"#.to_vec(),
            "device_mismatch",
        ),
        (
            br#"{"v": 2, "measurements": [{"type": "voltage_dc", "val": "NaN"}]}"#.to_vec(),
            "non_finite_value",
        ),
        (
            format!(r#"{{"timestamp": "{far_future}", "temperature": 1}}"#).into_bytes(),
            "timestamp_out_of_range",
        ),
    ];
    for (payload, _) in &cases {
        device.publish(&topic, payload.clone()).await;
    }
    device.publish_json(&topic, &v2_datagram("m6", 1, 1)).await;
    for (_, reason) in &cases {
        let (_, dead) = device.next(5).await;
        assert_eq!(dead["reason"], *reason, "{dead}");
        assert!(dead["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert_eq!(dead["topic"], topic);
    }
    app.eventually(
        "/api/devices/m6/metrics?start=-5m&metric=voltage_dc",
        5,
        |b| count(b) == 1,
    )
    .await;
    let stats: Value = app
        .get("/api/stats", &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["ingest"]["dead_lettered"], cases.len());
    assert_eq!(stats["ingest"]["rejected"]["not_json"], 1);
    let prometheus = app.scrape().await;
    assert!(
        prometheus.contains("devicehub_mqtt_dead_letters_total{reason=\"too_large\"} 1"),
        "{prometheus}"
    );
}

#[tokio::test]
async fn unknown_devices_are_dead_lettered_when_the_policy_rejects_them() {
    let mut settings = collector_settings();
    settings.mqtt.unknown_devices = devicehub::configuration::UnknownDevicePolicy::Reject;
    let app = spawn_app_with(settings).await;
    app.register("known").await;
    let mut device = Device::connect(
        std::slice::from_ref(&app.settings.mqtt.deadletter_topic),
        None,
    )
    .await;
    device
        .publish_json(
            &app.topic("stranger", "telemetry"),
            &json!({"temperature": 1}),
        )
        .await;
    device
        .publish_json(&app.topic("known", "telemetry"), &json!({"temperature": 2}))
        .await;
    let (_, dead) = device.next(5).await;
    assert!(dead["error"].as_str().unwrap().contains("stranger"));
    app.eventually("/api/devices/known/metrics?start=-5m", 5, |b| count(b) == 1)
        .await;
    assert_eq!(
        app.get("/api/devices/stranger", &app.viewer).await.status(),
        404
    );
}

#[tokio::test]
async fn a_silent_device_goes_offline_with_an_alert_and_comes_back_online() {
    let mut settings = collector_settings();
    settings.collector.liveness_check_secs = 1;
    let app = spawn_app_with(settings).await;
    app.register("quiet").await;
    for key in ["send_interval_s", "hello_interval_s"] {
        app.send_json(
            Method::PUT,
            &format!("/api/devices/quiet/configs/{key}"),
            &app.operator,
            &json!({"value": 1}),
        )
        .await;
    }
    let device = Device::connect(&[], None).await;
    let topic = app.topic("quiet", "telemetry");
    device
        .publish_json(&topic, &json!({"temperature": 20}))
        .await;
    app.eventually("/api/devices/quiet/status", 5, |b| {
        b["connection_status"] == "online"
    })
    .await;
    app.eventually("/api/devices/quiet/status", 10, |b| {
        b["connection_status"] == "offline"
    })
    .await;
    let alerts = app
        .eventually("/api/devices/quiet/alerts", 5, |b| count(b) == 1)
        .await;
    assert_eq!(alerts[0]["alert_type"], "offline");
    device
        .publish_json(&topic, &json!({"temperature": 21}))
        .await;
    app.eventually("/api/devices/quiet/status", 5, |b| {
        b["connection_status"] == "online"
    })
    .await;
}

#[tokio::test]
async fn the_v2_write_api_stores_points_in_a_real_server_gzipped_or_not() {
    // VictoriaMetrics accepts InfluxDB's /api/v2/write; read the points back through its own API.
    // On loopback "auto" sends plain bodies; "gzip" is forced here to prove that path too.
    use devicehub::configuration::InfluxCompression;
    for (compression, value) in [
        (InfluxCompression::Gzip, 25_000.5),
        (InfluxCompression::Auto, 25_001.5),
    ] {
        let mut settings = collector_settings().influxdb;
        settings.api = devicehub::configuration::InfluxApi::V2;
        settings.url = std::env::var("DEVICEHUB_TEST_VICTORIA_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:8428".into());
        settings.compression = compression;
        assert_eq!(settings.gzip(), compression == InfluxCompression::Gzip);
        let client = devicehub::stores::influxdb::InfluxClient::new(&settings).unwrap();
        let device = format!("vm-{}", uuid::Uuid::new_v4().simple());
        let reading = devicehub::domain::Reading {
            device_id: devicehub::domain::DeviceId::parse(&device).unwrap(),
            time: Utc::now(),
            metric: devicehub::domain::MetricName::parse("voltage_ac").unwrap(),
            value,
            unit: Some(devicehub::domain::Unit::parse("V").unwrap()),
        };
        let mut lines = String::new();
        devicehub::sinks::influxdb::push_line(&mut lines, &reading, None);
        client.write(&lines.into()).await.unwrap();
        client.check().await.unwrap();
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            // Fresh samples become searchable when VictoriaMetrics flushes its buffers.
            let _ = http
                .get(format!("{}/internal/force_flush", settings.url))
                .send()
                .await;
            let export = http
                .get(format!("{}/api/v1/export", settings.url))
                .query(&[("match[]", format!("{{device_id=\"{device}\"}}"))])
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if export.contains(&value.to_string()) {
                assert!(export.contains("iot_telemetry_value"), "{export}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{compression:?}: point not found: {export}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test]
async fn a_record_postgresql_refuses_is_quarantined_and_the_registry_moves_on() {
    let app = collector_app().await;
    app.register("m9").await;
    // A rule of the registry's own database that refuses one firmware version: the registry
    // sink's writes of that hello fail however often they are tried.
    sqlx::query(
        "ALTER TABLE devices ADD CONSTRAINT fw_not_withdrawn \
         CHECK (fw_version IS DISTINCT FROM '6.6.6-withdrawn')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let device = Device::connect(&[], None).await;
    let hello = |seq: u64, fw: &str| {
        json!({"v": 2, "device_id": "m9", "ts": Utc::now().to_rfc3339(), "seq": seq,
               "fw_version": fw, "uptime_s": seq})
    };
    device
        .publish_json(&app.topic("m9", "hello"), &hello(1, "1.0.0"))
        .await;
    device
        .publish_json(&app.topic("m9", "hello"), &hello(2, "6.6.6-withdrawn"))
        .await;
    for seq in 3..=5 {
        device
            .publish_json(&app.topic("m9", "telemetry"), &v2_datagram("m9", seq, 1))
            .await;
    }
    let quarantined = app
        .eventually("/api/quarantine?sink=registry", 10, |b| count(b) == 1)
        .await;
    let record = &quarantined[0];
    assert_eq!(record["device_id"], "m9");
    assert_eq!(record["topic"], app.topic("m9", "hello"));
    assert!(
        record["payload"]
            .as_str()
            .unwrap()
            .contains("6.6.6-withdrawn"),
        "{record}"
    );
    assert!(
        record["reason"]
            .as_str()
            .unwrap()
            .contains("fw_not_withdrawn"),
        "{record}"
    );
    let one: Value = app
        .get(&format!("/api/quarantine/{}", record["id"]), &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["journal_no"], record["journal_no"]);
    // Everything else of the batch was applied.
    let status = app
        .eventually("/api/devices/m9/status", 5, |b| b["fw_version"] == "1.0.0")
        .await;
    assert_eq!(status["connection_status"], "online");
    let last_seq: i64 =
        sqlx::query_scalar("SELECT last_seq FROM device_sequences WHERE device_id = 'm9'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(last_seq, 5);
    let alerts = app
        .eventually("/api/devices/m9/alerts", 5, |b| count(b) >= 1)
        .await;
    assert_eq!(alerts[0]["alert_type"], "sink_rejected", "{alerts}");
    assert_eq!(alerts[0]["severity"], "error");
    assert!(
        count(
            &app.get("/api/quarantine?sink=influxdb", &app.viewer)
                .await
                .json::<Value>()
                .await
                .unwrap()
        ) == 0
    );
    assert_error(
        app.get("/api/quarantine?sink=nowhere", &app.viewer).await,
        400,
    )
    .await;
}

#[tokio::test]
async fn a_metrics_query_over_the_point_cap_is_400_and_downsampled_it_answers() {
    let app = spawn_app_with(collector_settings()).await;
    app.register("dense").await;
    let influx = devicehub::stores::influxdb::InfluxClient::new(&app.settings.influxdb).unwrap();
    influx.ensure_database().await.unwrap();
    // Two metrics of 60,001 points each within the last 30 minutes, straight into InfluxDB.
    let start = Utc::now() - Duration::minutes(30);
    let mut lines = String::new();
    for metric in ["voltage_ac", "current_ac"] {
        for i in 0..60_001i64 {
            let at = (start + Duration::milliseconds(i * 20))
                .timestamp_nanos_opt()
                .unwrap();
            lines.push_str(&format!(
                "iot_telemetry,device_id=dense,metric={metric},unit=V value={i}.0 {at}\n"
            ));
        }
    }
    influx.write(&bytes::Bytes::from(lines)).await.unwrap();
    let path = "/api/devices/dense/metrics?start=-1h&limit=100000";
    let response = app.get(path, &app.viewer).await;
    assert_eq!(response.status(), 400, "over the cap");
    let error: Value = response.json().await.unwrap();
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("120002 points"), "{message}");
    assert!(message.contains("downsample"), "{message}");
    let downsampled: Value = app
        .get(&format!("{path}&every=1m&fn=mean"), &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        (2 * 20..=2 * 32).contains(&count(&downsampled)),
        "{}",
        count(&downsampled)
    );
    let one_metric = app
        .get(&format!("{path}&metric=voltage_ac"), &app.viewer)
        .await;
    assert_eq!(one_metric.status(), 200, "one metric is within the cap");
    assert_eq!(count(&one_metric.json::<Value>().await.unwrap()), 60_001);
}

#[tokio::test]
async fn two_devices_may_use_the_same_event_id() {
    let app = collector_app().await;
    let mut device = Device::connect(
        &[
            app.qs_topic("esp32-a", "acks"),
            app.qs_topic("esp32-b", "acks"),
        ],
        None,
    )
    .await;
    for id in ["esp32-a", "esp32-b"] {
        let event =
            json!({"schema": 1, "event_id": "boot-1", "device_id": id, "event_type": "boot"});
        device
            .publish_json(&app.qs_topic(id, "events"), &event)
            .await;
        let (topic, ack) = device.next(5).await;
        assert_eq!(topic, app.qs_topic(id, "acks"));
        assert_eq!(ack["status"], "stored", "{id}: {ack}");
    }
    for id in ["esp32-a", "esp32-b"] {
        let events: Value = app
            .get(&format!("/api/devices/{id}/events"), &app.viewer)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(count(&events), 1, "{id}");
    }
}

#[tokio::test]
async fn registrations_beyond_the_rate_are_dead_lettered_and_a_protocol_can_refuse_unknown_devices()
{
    let mut settings = collector_settings();
    settings.mqtt.registrations_per_minute = 3;
    settings.mqtt.unknown_devices_by_protocol.insert(
        "qs".into(),
        devicehub::configuration::UnknownDevicePolicy::Reject,
    );
    let app = spawn_app_with(settings).await;
    let deadletter = app.settings.mqtt.deadletter_topic.clone();
    let qs_deadletter = format!("{}/deadletter", app.settings.mqtt.qs_prefix);
    let mut device = Device::connect(&[deadletter.clone(), qs_deadletter.clone()], None).await;
    for i in 1..=5 {
        let id = format!("new-{i}");
        device
            .publish_json(&app.topic(&id, "telemetry"), &v2_datagram(&id, 1, 1))
            .await;
    }
    // Known devices are never limited: new-1 again.
    device
        .publish_json(
            &app.topic("new-1", "telemetry"),
            &v2_datagram("new-1", 2, 1),
        )
        .await;
    for _ in 0..2 {
        let (topic, dead) = device.next(5).await;
        assert_eq!(topic, deadletter);
        assert_eq!(dead["reason"], "registration_limited", "{dead}");
    }
    // qs/v1 refuses devices the registry does not know.
    let event =
        json!({"schema": 1, "event_id": "e-1", "device_id": "stranger", "event_type": "boot"});
    device
        .publish_json(&app.qs_topic("stranger", "events"), &event)
        .await;
    let (topic, dead) = device.next(5).await;
    assert_eq!(topic, qs_deadletter);
    assert_eq!(dead["reason"], "invalid_device_id", "{dead}");

    let devices = app.eventually("/api/devices", 10, |b| count(b) == 3).await;
    let mut ids: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["new-1", "new-2", "new-3"]);
    let stats = app
        .eventually("/api/stats", 5, |b| {
            b["ingest"]["rejected"]["registration_limited"] == 2
        })
        .await;
    assert_eq!(stats["ingest"]["messages_accepted"], 4, "{stats}");
}

#[tokio::test]
async fn retained_telemetry_is_no_new_reading_at_any_restart_and_a_stale_retained_online_changes_nothing(
) {
    let settings = collector_settings();
    let first = spawn_app_with(settings.clone()).await;
    first.register("ret-dead").await;
    // The registry heard from it a minute ago and has marked it offline since.
    sqlx::query(
        "UPDATE devices SET last_seen = now() - interval '1 minute', \
         connection_status = 'offline' WHERE device_id = 'ret-dead'",
    )
    .execute(&first.pool)
    .await
    .unwrap();
    let device = Device::connect(&[], None).await;
    let retained = [
        (
            first.topic("ret-meter", "telemetry"),
            json!({"device_id": "ret-meter", "temperature": 21.5}),
        ),
        (
            first.topic("ret-dead", "status"),
            json!({"v": 2, "device_id": "ret-dead", "status": "online",
                   "ts": (Utc::now() - Duration::hours(1)).to_rfc3339()}),
        ),
        (
            first.topic("ret-new", "status"),
            json!({"v": 2, "device_id": "ret-new", "status": "online",
                   "ts": Utc::now().to_rfc3339()}),
        ),
    ];
    for (topic, payload) in &retained {
        device
            .client
            .publish(topic, rumqttc::QoS::AtLeastOnce, true, payload.to_string())
            .await
            .unwrap();
    }
    // The first app heard them live (not retained): the reading is stored once, the statuses
    // applied. Then three starts, each a new subscription that the broker hands the retained
    // messages to, over the same database.
    first
        .eventually("/api/devices/ret-meter/metrics?start=-1h", 10, |b| {
            count(b) == 1
        })
        .await;
    first
        .eventually("/api/devices/ret-new/status", 10, |b| {
            b["connection_status"] == "online"
        })
        .await;
    for start in 0..3 {
        // `ret-dead` was last heard a minute ago, long after its retained `online`; `ret-new`
        // an hour ago, before its retained `online` (which the registry missed).
        sqlx::query(
            "UPDATE devices SET connection_status = 'offline', last_seen = now() - \
             CASE device_id WHEN 'ret-dead' THEN interval '1 minute' ELSE interval '2 hours' END \
             WHERE device_id IN ('ret-dead', 'ret-new')",
        )
        .execute(&first.pool)
        .await
        .unwrap();
        let mut settings = settings.clone();
        settings.mqtt.client_id = format!("{}-restart-{start}", settings.mqtt.client_id);
        settings.collector.journal_dir = settings.collector.journal_dir.join(format!("{start}"));
        let app = spawn_app_with(settings).await;
        let ignored = r#"devicehub_mqtt_retained_ignored_total"#;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let text = app.scrape().await;
            if metric_sample(&text, ignored) == Some(2.0) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "start {start}: the retained reading and stale status were not both ignored:\n{text}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let points = app
            .get("/api/devices/ret-meter/metrics?start=-1h", &app.viewer)
            .await
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(count(&points), 1, "start {start}: still the one reading");
        // A retained status newer than the registry's news is applied ...
        app.eventually("/api/devices/ret-new/status", 5, |b| {
            b["connection_status"] == "online"
        })
        .await;
        // ... and by then an older one would have been too.
        let dead = app
            .get("/api/devices/ret-dead/status", &app.viewer)
            .await
            .json::<Value>()
            .await
            .unwrap();
        assert_eq!(dead["connection_status"], "offline", "start {start}");
    }
    for (topic, _) in &retained {
        // An empty retained message clears what the broker keeps.
        device
            .client
            .publish(topic, rumqttc::QoS::AtLeastOnce, true, Vec::new())
            .await
            .unwrap();
    }
}

/// A Gen2 Shelly with both MQTT notifications on says each status twice (its status topic and a
/// NotifyStatus): each reading is stored once. One with only NotifyStatus is read from it.
#[tokio::test]
async fn a_shelly_saying_each_status_twice_has_each_reading_stored_once() {
    let app = collector_app().await;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let (both, only_rpc) = (
        format!("shellyplus1pm-b{tag}"),
        format!("shellyplus1pm-r{tag}"),
    );
    let device = Device::connect(&[], None).await;
    for i in 0..3 {
        let power = 10.0 + f64::from(i);
        let status = json!({"id": 0, "source": "timer", "output": true, "apower": power,
                            "voltage": 230.1, "aenergy": {"total": 100.0 + f64::from(i)}});
        let notify = |id: &str| {
            json!({"src": id, "dst": format!("{id}/events"), "method": "NotifyStatus",
                   "params": {"ts": Utc::now().timestamp_millis() as f64 / 1000.0,
                              "switch:0": status.clone()}})
        };
        device
            .publish_json(&format!("{both}/status/switch:0"), &status)
            .await;
        device
            .publish_json(&format!("{both}/events/rpc"), &notify(&both))
            .await;
        device
            .publish_json(&format!("{only_rpc}/events/rpc"), &notify(&only_rpc))
            .await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    for id in [&both, &only_rpc] {
        app.eventually(
            &format!("/api/devices/{id}/metrics?start=-5m&metric=switch0.power"),
            10,
            |b| count(b) >= 3,
        )
        .await;
    }
    // Everything sent is in by now (one batch after the last): still three each.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    for id in [&both, &only_rpc] {
        let points: Value = app
            .get(
                &format!("/api/devices/{id}/metrics?start=-5m&metric=switch0.power"),
                &app.viewer,
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(count(&points), 3, "{id}: {points}");
    }
}
