//! Fault tests: devicehub as a real process while its stores go away, and while it is itself
//! killed mid-stream. Every message must end up in InfluxDB and the archive exactly once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;
use devicehub::lake::READINGS_PREFIX;
use devicehub::stores::influxdb::InfluxClient;
use devicehub::stores::objects::{ObjectStore, S3Store};
use serde_json::{json, Value};

use crate::harness::services as servers;
use crate::harness::{scratch, Service};

const MESSAGES: u64 = 10_000;
const DEVICE: &str = "train-7";
/// `message_size_limit` of the shipped broker config.
const BROKER_MESSAGE_SIZE_LIMIT: usize = 262_144;

fn local_archived_seqs(archive: &Path) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut stack = vec![archive.join(DEVICE)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path: PathBuf = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                seqs.extend(payload_seqs(&std::fs::read(&path).unwrap()));
            }
        }
    }
    seqs
}

fn payload_seqs(object: &[u8]) -> Vec<u64> {
    let objects: Value = serde_json::from_slice(object).unwrap();
    objects
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["payload"]["seq"].as_u64().unwrap())
        .collect()
}

/// The `seq` of every raw message of the device in `store`, and of every lake row of it.
async fn store_seqs(store: &ObjectStore) -> Option<(Vec<u64>, Vec<u64>)> {
    let mut raw = Vec::new();
    for object in store.list(&format!("{DEVICE}/"), 100_000).await.ok()? {
        raw.extend(payload_seqs(&store.get(&object.filename).await.ok()??));
    }
    let mut lake = Vec::new();
    for object in store
        .list(&format!("{READINGS_PREFIX}/"), 100_000)
        .await
        .ok()?
    {
        let bytes = store.get(&object.filename).await.ok()??;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(bytes),
        )
        .unwrap()
        .build()
        .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let seqs = batch
                .column_by_name("seq")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::UInt64Array>()
                .unwrap();
            let devices = batch
                .column_by_name("device_id")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap();
            lake.extend(
                (0..batch.num_rows())
                    .filter(|&i| devices.value(i) == DEVICE)
                    .map(|i| seqs.value(i)),
            );
        }
    }
    Some((raw, lake))
}

async fn influx_points(influx: &InfluxClient) -> u64 {
    let series = influx
        .query(&format!(
            "SELECT count(\"value\") FROM \"iot_telemetry\" WHERE \"device_id\" = '{DEVICE}'"
        ))
        .await
        .unwrap_or_default();
    series
        .first()
        .and_then(|s| s.values.first())
        .and_then(|row| row.get(1))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Publishes `MESSAGES` v2 datagrams (one reading each, `seq` 1..) at QoS 1, 100 every
/// `pace`, and returns the client when all are handed to the broker.
fn stream(
    broker_port: u16,
    tag: &str,
    pace: Duration,
) -> tokio::task::JoinHandle<rumqttc::AsyncClient> {
    let mut options = servers::device_options(broker_port, DEVICE, format!("fault-device-{tag}"));
    // A persistent session that reconnects, as a device that must not lose data behaves: what
    // was in flight when the broker went away is sent again.
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_inflight(200);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1000);
    tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let base = Utc::now() - chrono::Duration::minutes(30);
    tokio::spawn(async move {
        for seq in 1..=MESSAGES {
            let ts = (base + chrono::Duration::milliseconds(seq as i64)).to_rfc3339();
            let body = json!({"v": 2, "device_id": DEVICE, "ts": ts, "seq": seq, "msg_type": "telemetry",
                              "measurements": [{"ts": ts, "type": "voltage_ac", "val": 25_000.0 + seq as f64, "unit": "V"}]});
            client
                .publish(
                    format!("iot/{DEVICE}/telemetry"),
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    body.to_string(),
                )
                .await
                .unwrap();
            if seq % 100 == 0 {
                tokio::time::sleep(pace).await;
            }
        }
        client
    })
}

fn assert_exactly_once(what: &str, seqs: &[u64]) {
    let distinct: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        seqs.len(),
        "{what}: {} duplicates",
        seqs.len() - distinct.len()
    );
    assert_eq!(
        distinct,
        (1..=MESSAGES).collect::<BTreeSet<u64>>(),
        "{what}"
    );
}

/// Waits (up to `secs`) until InfluxDB holds `MESSAGES` points of the device and `store` every
/// message once in the raw archive and once in the lake; fails early on a duplicate.
async fn assert_all_stored_once(service: &mut Service, store: &ObjectStore, secs: u64) {
    let influx = service.influx();
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let points = influx_points(&influx).await;
        let (raw, lake) = store_seqs(store).await.unwrap_or_default();
        assert!(
            points <= MESSAGES && raw.len() as u64 <= MESSAGES && lake.len() as u64 <= MESSAGES,
            "duplicates: {points} points, {} raw, {} lake rows",
            raw.len(),
            lake.len()
        );
        if points == MESSAGES && raw.len() as u64 == MESSAGES && lake.len() as u64 == MESSAGES {
            assert_exactly_once("raw archive", &raw);
            assert_exactly_once("lake", &lake);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {secs} s: {points} points in InfluxDB, {} raw and {} lake rows, of {MESSAGES}",
            raw.len(),
            lake.len()
        );
        assert!(service.is_running(), "devicehub exited");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(service.is_running(), "devicehub exited");
}

/// The registry has the device's last `seq`; with `no_gaps`, it raised no `sequence_gap` alert.
async fn registry_has_the_last_seq(service: &Service, no_gaps: bool) {
    let pool = sqlx::PgPool::connect(&service.database_url())
        .await
        .unwrap();
    // The registry writes about once a second; after an outage it may still be catching up.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT last_seq FROM device_sequences WHERE device_id = $1")
                .bind(DEVICE)
                .fetch_optional(&pool)
                .await
                .unwrap();
        if last == Some(MESSAGES as i64) {
            break;
        }
        assert!(Instant::now() < deadline, "last seq {last:?} of {MESSAGES}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if no_gaps {
        let gaps: Vec<String> =
            sqlx::query_scalar("SELECT message FROM alerts WHERE alert_type = 'sequence_gap'")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert!(gaps.is_empty(), "{gaps:?}");
    }
    pool.close().await;
}

async fn registry_saw_every_seq(service: &Service) {
    registry_has_the_last_seq(service, true).await;
}

#[tokio::test]
async fn sigkill_and_restart_mid_stream_loses_and_duplicates_nothing() {
    let (tag, dir) = scratch();
    let broker = servers::mosquitto(&dir, &[DEVICE]);
    let mut service = Service::new(&tag, broker.port, &dir);
    service.start().await;
    let publisher = stream(broker.port, &tag, Duration::from_millis(10));
    // Kill devicehub while the stream is under way, and bring it back.
    tokio::time::sleep(Duration::from_millis(400)).await;
    service.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    service.start().await;
    let _client = publisher.await.unwrap();

    let store = ObjectStore::local(dir.join("archive"));
    assert_all_stored_once(&mut service, &store, 60).await;
    assert_exactly_once(
        "local archive files",
        &local_archived_seqs(&dir.join("archive")),
    );
    registry_saw_every_seq(&service).await;
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn sigterm_mid_stream_exits_0_within_the_grace_period_and_loses_and_duplicates_nothing() {
    let (tag, dir) = scratch();
    let broker = servers::mosquitto(&dir, &[DEVICE]);
    let mut service = Service::new(&tag, broker.port, &dir);
    service.start().await;
    let publisher = stream(broker.port, &tag, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, took) = service.terminate();
    assert!(status.success(), "exit status {status}");
    // The shipped default grace period (shutdown_grace_secs) is 10 s.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    eprintln!("devicehub exited {status} {took:?} after SIGTERM");
    let accepted_before = {
        let pool = sqlx::PgPool::connect(&format!(
            "postgres://postgres@127.0.0.1:5432/devicehub_test_{tag}"
        ))
        .await
        .unwrap();
        let position: i64 = sqlx::query_scalar("SELECT max(position) FROM collector_cursors")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        position
    };
    assert!(
        accepted_before > 0,
        "the registry wrote its batch before exiting"
    );
    service.start().await;
    let _client = publisher.await.unwrap();

    let store = ObjectStore::local(dir.join("archive"));
    assert_all_stored_once(&mut service, &store, 60).await;
    registry_saw_every_seq(&service).await;
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgresql_stopped_for_30_s_mid_stream_loses_and_duplicates_nothing() {
    let (tag, dir) = scratch();
    let broker = servers::mosquitto(&dir, &[DEVICE]);
    let mut postgres = servers::postgres(&dir);
    let mut service = Service::new(&tag, broker.port, &dir);
    service.set(
        "DEVICEHUB__DATABASE__URL",
        format!("postgres://postgres@127.0.0.1:{}/devicehub", postgres.port),
    );
    service.start().await;
    // 10,000 messages over about 10 s; PostgreSQL goes away 2 s in, for 30 s.
    let publisher = stream(broker.port, &tag, Duration::from_millis(100));
    tokio::time::sleep(Duration::from_secs(2)).await;
    postgres.stop();
    let stopped = Instant::now();
    let _client = publisher.await.unwrap();
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(stopped.elapsed())).await;
    assert!(
        service.is_running(),
        "devicehub exited while PostgreSQL was down"
    );
    // InfluxDB and the archive did not wait for PostgreSQL.
    let store = ObjectStore::local(dir.join("archive"));
    assert_all_stored_once(&mut service, &store, 30).await;
    postgres.start();
    registry_saw_every_seq(&service).await;
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_broker_restarted_mid_stream_loses_and_duplicates_nothing() {
    let (tag, dir) = scratch();
    let mut broker = servers::mosquitto(&dir, &[DEVICE]);
    let mut service = Service::new(&tag, broker.port, &dir);
    service.start().await;
    let publisher = stream(broker.port, &tag, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(600)).await;
    // A service manager's restart: SIGTERM (Mosquitto saves its sessions), then start again.
    broker.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    broker.start();
    let _client = publisher.await.unwrap();

    let store = ObjectStore::local(dir.join("archive"));
    assert_all_stored_once(&mut service, &store, 90).await;
    // The device resends what was in flight in packet-id order, not seq order: the registry
    // may have raised sequence_gap alerts for numbers that arrived late (README "Failure
    // model"); it still ends at the last number.
    registry_has_the_last_seq(&service, false).await;
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn influxdb_stopped_for_30_s_mid_stream_loses_and_duplicates_nothing() {
    let (tag, dir) = scratch();
    let broker = servers::mosquitto(&dir, &[DEVICE]);
    let mut influxdb = servers::influxdb(&dir);
    let mut service = Service::new(&tag, broker.port, &dir);
    service.set(
        "DEVICEHUB__INFLUXDB__URL",
        format!("http://127.0.0.1:{}", influxdb.port),
    );
    service.start().await;
    // 10,000 messages over about 10 s; InfluxDB goes away 2 s in, for 30 s.
    let publisher = stream(broker.port, &tag, Duration::from_millis(100));
    tokio::time::sleep(Duration::from_secs(2)).await;
    influxdb.stop();
    let stopped = Instant::now();
    let before = influx_points(&service.influx()).await;
    assert_eq!(before, 0, "InfluxDB is down");
    let _client = publisher.await.unwrap();
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(stopped.elapsed())).await;
    assert!(
        service.is_running(),
        "devicehub exited while InfluxDB was down"
    );
    influxdb.start();

    let store = ObjectStore::local(dir.join("archive"));
    assert_all_stored_once(&mut service, &store, 60).await;
    let ingest = service.ingest_stats().await;
    assert!(
        ingest["influx_write_errors"].as_u64().unwrap() > 0,
        "the outage was seen: {ingest}"
    );
    assert_eq!(ingest["points_written"], MESSAGES);
    registry_saw_every_seq(&service).await;
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn s3_stopped_mid_stream_loses_and_duplicates_nothing() {
    let (tag, dir) = scratch();
    let broker = servers::mosquitto(&dir, &[DEVICE]);
    let mut s3 = servers::s3(&dir);
    let mut service = Service::new(&tag, broker.port, &dir);
    let mut s3_settings =
        crate::harness::s3_settings(Some(format!("http://127.0.0.1:{}", s3.port)));
    s3_settings.access_key = Some(servers::S3_ACCESS_KEY.to_owned().into());
    s3_settings.secret_key = Some(servers::S3_SECRET_KEY.to_owned().into());
    for (key, value) in [
        ("DEVICEHUB__ARCHIVE__BACKEND", "s3".to_owned()),
        (
            "DEVICEHUB__S3__ENDPOINT",
            format!("http://127.0.0.1:{}", s3.port),
        ),
        ("DEVICEHUB__S3__BUCKET", s3_settings.bucket.clone()),
        ("DEVICEHUB__S3__ACCESS_KEY", servers::S3_ACCESS_KEY.into()),
        ("DEVICEHUB__S3__SECRET_KEY", servers::S3_SECRET_KEY.into()),
    ] {
        service.set(key, value);
    }
    service.start().await;
    let publisher = stream(broker.port, &tag, Duration::from_millis(100));
    tokio::time::sleep(Duration::from_secs(2)).await;
    s3.stop();
    let _client = publisher.await.unwrap();
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(service.is_running(), "devicehub exited while S3 was down");
    s3.start();

    let store = ObjectStore::new(S3Store::new(&s3_settings).unwrap());
    assert_all_stored_once(&mut service, &store, 60).await;
    let ingest = service.ingest_stats().await;
    assert!(
        ingest["archive_write_errors"].as_u64().unwrap() > 0,
        "the outage was seen: {ingest}"
    );
    registry_saw_every_seq(&service).await;
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

/// The device a topic belongs to (`iot/{id}/...`, `qs/v1/{id}/...`): the user it publishes as.
fn topic_device(topic: &str) -> &str {
    let mut levels = topic.split('/');
    match levels.next() {
        Some("qs") => levels.nth(1),
        _ => levels.next(),
    }
    .unwrap_or_default()
}

/// Publishes each message once at QoS 1, each as the device of its topic, and waits until the
/// broker has them all.
async fn publish_each(broker_port: u16, messages: &[(String, Vec<u8>)]) {
    for (topic, payload) in messages {
        let id = format!("poison-{}", uuid::Uuid::new_v4().simple());
        let mut options = servers::device_options(broker_port, topic_device(topic), id);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 100);
        client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap();
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => break,
                Ok(_) => {}
                // Mosquitto 2.0.11 (Debian 12) drops the connection of an MQTT 3.1.1 client
                // whose publish is over message_size_limit instead of acknowledging it.
                Err(_) if payload.len() > BROKER_MESSAGE_SIZE_LIMIT => break,
                Err(e) => panic!("publishing to {topic}: {e}"),
            }
        }
    }
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_or_quarantined_and_10000_good_ones_all_arrive() {
    use reqwest::Method;
    let (tag, dir) = scratch();
    let broker = servers::mosquitto(&dir, &[DEVICE, ".", "..", "poison-1", "big-meter"]);
    // A server that refuses write bodies over 16 KiB: a message of 200 readings is more.
    let influxdb = servers::influxdb_with_body_limit(&dir, 16 * 1024);
    let mut service = Service::new(&tag, broker.port, &dir);
    service.set(
        "DEVICEHUB__INFLUXDB__URL",
        format!("http://127.0.0.1:{}", influxdb.port),
    );
    service.set("DEVICEHUB__INFLUXDB__BATCH__MAX_BYTES", "12000");
    // Below the broker's message_size_limit (256 KiB), so that both limits are crossed below.
    service.set("DEVICEHUB__MQTT__MAX_PAYLOAD_BYTES", "65536");
    service.start().await;

    // The API refuses what no store can take...
    let dots = json!({"device_id": "..", "device_name": "dots"});
    assert_eq!(
        service
            .api(Method::POST, "/api/devices", Some(dots))
            .await
            .0,
        422
    );
    let device = json!({"device_id": DEVICE, "device_name": "Train 7"});
    assert_eq!(
        service
            .api(Method::POST, "/api/devices", Some(device))
            .await
            .0,
        201
    );
    let newline = json!({"device_type": "ac\nmeter"});
    let path = format!("/api/devices/{DEVICE}");
    assert_eq!(service.api(Method::PUT, &path, Some(newline)).await.0, 422);
    // ...and a type set before the rule existed still reaches InfluxDB as a tag.
    let pool = sqlx::PgPool::connect(&format!(
        "postgres://postgres@127.0.0.1:5432/devicehub_test_{tag}"
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE devices SET device_type = E'ac\\nmeter' WHERE device_id = $1")
        .bind(DEVICE)
        .execute(&pool)
        .await
        .unwrap();

    let cmd = uuid::Uuid::new_v4();
    let now = Utc::now().to_rfc3339();
    let big: Vec<Value> = (0..200)
        .map(|i| json!({"ts": now, "type": format!("channel_{i}"), "val": i, "unit": "A"}))
        .collect();
    let poison: Vec<(String, Vec<u8>)> = [
        ("iot/./telemetry", json!({"v": 2, "seq": 1, "measurements": [{"type": "v", "val": 1}]})),
        ("iot/../telemetry", json!({"v": 2, "seq": 1, "measurements": [{"type": "v", "val": 1}]})),
        ("iot/poison-1/hello", json!({"v": 2, "fw_version": "1.0\u{0}", "uptime_s": 5})),
        ("iot/poison-1/command/ack", json!({"cmd_id": cmd, "result": "error", "detail": "bad\u{0}"})),
        ("iot/poison-1/ota/status", json!({"cmd_id": cmd, "ota_state": "install\u{0}ing"})),
        ("qs/v1/poison-1/events", json!({"schema": 1, "event_id": "e\u{0}1", "device_id": "poison-1", "event_type": "door"})),
        ("iot/big-meter/telemetry", json!({"v": 2, "seq": 1, "ts": now, "measurements": big})),
    ]
    .into_iter()
    .map(|(topic, payload)| (topic.to_owned(), payload.to_string().into_bytes()))
    .chain([100 * 1024, 300 * 1024].map(|bytes| {
        // Over devicehub's limit (dead-lettered), and over the broker's (refused by it).
        let payload = format!("{{\"v\":2,\"pad\":\"{}\"}}", "x".repeat(bytes));
        ("iot/poison-1/telemetry".to_owned(), payload.into_bytes())
    }))
    .collect();
    publish_each(broker.port, &poison).await;
    let publisher = stream(broker.port, &tag, Duration::from_millis(10));
    let _client = publisher.await.unwrap();

    let store = ObjectStore::local(dir.join("archive"));
    assert_all_stored_once(&mut service, &store, 90).await;
    registry_saw_every_seq(&service).await;

    let ingest = service.ingest_stats().await;
    let rejected = &ingest["rejected"];
    assert_eq!(rejected["invalid_device_id"], 2, "{ingest}");
    assert_eq!(rejected["control_character"], 4, "{ingest}");
    assert_eq!(rejected["too_large"], 1, "{ingest}");
    let (status, quarantined) = service.api(Method::GET, "/api/quarantine", None).await;
    assert_eq!(status, 200);
    let quarantined = quarantined.as_array().unwrap().clone();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    let record = &quarantined[0];
    assert_eq!(record["sink"], "influxdb");
    assert_eq!(record["device_id"], "big-meter");
    assert_eq!(record["topic"], "iot/big-meter/telemetry");
    assert!(
        record["reason"].as_str().unwrap().contains("413"),
        "{record}"
    );
    let alerts = service
        .api(Method::GET, "/api/devices/big-meter/alerts", None)
        .await
        .1;
    assert!(
        alerts
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["alert_type"] == "sink_rejected"),
        "{alerts}"
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", service.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("devicehub_quarantined_total{sink=\"influxdb\"} 1"),
        "{metrics}"
    );

    // A restart resumes after what was written and quarantined: nothing is refused again.
    let (status, _) = service.terminate();
    assert!(status.success());
    service.start().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ingest = service.ingest_stats().await;
    assert_eq!(ingest["influx_write_errors"], 0, "{ingest}");
    let (_, again) = service.api(Method::GET, "/api/quarantine", None).await;
    assert_eq!(again.as_array().unwrap().len(), 1);
    pool.close().await;
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn influxdb_refusing_the_credentials_fails_readyz_with_the_reason_and_loses_nothing() {
    let (tag, dir) = scratch();
    let broker = servers::mosquitto(&dir, &[DEVICE]);
    let influxdb = servers::influxdb_with_auth(&dir);
    let influx_url = format!("http://127.0.0.1:{}", influxdb.port);
    // The first admin; from now on InfluxDB wants credentials, which devicehub does not have.
    let created = reqwest::Client::new()
        .post(format!("{influx_url}/query"))
        .form(&[(
            "q",
            "CREATE USER admin WITH PASSWORD 'fault-test-pw' WITH ALL PRIVILEGES",
        )])
        .send()
        .await
        .unwrap();
    assert!(created.status().is_success());
    let mut service = Service::new(&tag, broker.port, &dir);
    service.set("DEVICEHUB__INFLUXDB__URL", influx_url.clone());
    service.start().await;
    let publisher = stream(broker.port, &tag, Duration::from_millis(1));
    let _client = publisher.await.unwrap();
    let readyz = format!("http://127.0.0.1:{}/readyz", service.http);
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        let (status, body) = service.api(reqwest::Method::GET, "/readyz", None).await;
        if status == 503 && body["details"]["influxdb sink"].is_string() {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "readyz never named the sink: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        body["details"]["influxdb sink"]
            .as_str()
            .unwrap()
            .contains("401"),
        "{body}"
    );
    assert!(service.is_running());

    // The operator gives devicehub the credentials: everything journaled meanwhile arrives.
    let (status, _) = service.terminate();
    assert!(status.success());
    service.set("DEVICEHUB__INFLUXDB__USERNAME", "admin");
    service.set("DEVICEHUB__INFLUXDB__PASSWORD", "fault-test-pw");
    service.start().await;
    let store = ObjectStore::local(dir.join("archive"));
    assert_all_stored_once(&mut service, &store, 60).await;
    let ready = reqwest::get(&readyz).await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_database_recreated_while_the_journal_was_kept_starts_with_an_alert() {
    use reqwest::Method;
    let (tag, dir) = scratch();
    let broker = servers::mosquitto(&dir, &[DEVICE]);
    let mut service = Service::new(&tag, broker.port, &dir);
    // Small segments: the first ones are deleted once every sink has written them.
    service.set("DEVICEHUB__COLLECTOR__SEGMENT_BYTES", "65536");
    service.start().await;
    let publisher = stream(broker.port, &tag, Duration::from_millis(1));
    let _client = publisher.await.unwrap();
    let store = ObjectStore::local(dir.join("archive"));
    assert_all_stored_once(&mut service, &store, 60).await;
    let (status, _) = service.terminate();
    assert!(status.success());
    let oldest = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".seg")?.parse::<u64>().ok())
        .min()
        .unwrap();
    assert!(oldest > 1, "consumed segments were removed");

    // The registry comes back empty (a new database): its cursor of this journal is gone.
    let admin = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    sqlx::query(&format!(
        "DROP DATABASE \"devicehub_test_{tag}\" WITH (FORCE)"
    ))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    service.start().await;
    let (status, alerts) = service.api(Method::GET, "/api/alerts", None).await;
    assert_eq!(status, 200);
    let skipped: Vec<&Value> = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["alert_type"] == "journal_skipped")
        .collect();
    assert_eq!(skipped.len(), 1, "{alerts}");
    assert_eq!(skipped[0]["device_id"], Value::Null);
    assert_eq!(skipped[0]["severity"], "critical");
    assert!(
        skipped[0]["message"].as_str().unwrap().contains("registry"),
        "{}",
        skipped[0]
    );
    // And it works on: a new message reaches the registry.
    publish_each(
        broker.port,
        &[(
            format!("iot/{DEVICE}/telemetry"),
            json!({"v": 2, "seq": MESSAGES + 1, "measurements": [{"type": "voltage_ac", "val": 1.0}]})
                .to_string()
                .into_bytes(),
        )],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, device) = service
            .api(Method::GET, &format!("/api/devices/{DEVICE}"), None)
            .await;
        if status == 200 && device["status"] == "unregistered" {
            break;
        }
        assert!(Instant::now() < deadline, "{status} {device}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

/// The journal as a collector left it, unwritten by any sink: `records` readings of `DEVICE`,
/// `seq` = journal number, in segments of `segment_bytes`. Returns the segments, oldest first.
fn write_journal(dir: &Path, records: u64, segment_bytes: u64) -> Vec<(u64, PathBuf)> {
    use devicehub::journal::{Entry, Journal};
    let (mut journal, _) = Journal::open(dir, segment_bytes).unwrap();
    let base = Utc::now() - chrono::Duration::minutes(30);
    let entries: Vec<Entry> = (1..=records)
        .map(|seq| {
            let ts = (base + chrono::Duration::milliseconds(seq as i64)).to_rfc3339();
            let body = json!({"v": 2, "device_id": DEVICE, "ts": ts, "seq": seq, "msg_type": "telemetry",
                              "measurements": [{"ts": ts, "type": "voltage_ac", "val": seq as f64, "unit": "V"}]});
            Entry {
                received: Utc::now(),
                topic: format!("iot/{DEVICE}/telemetry"),
                payload: body.to_string().into_bytes(),
            }
        })
        .collect();
    for chunk in entries.chunks(100) {
        journal.append_then(&mut chunk.to_vec(), |_, _| {}).unwrap();
    }
    let mut segments: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|path| {
            let first = path
                .file_name()?
                .to_str()?
                .strip_suffix(".seg")?
                .parse()
                .ok()?;
            Some((first, path))
        })
        .collect();
    segments.sort();
    segments
}

#[tokio::test]
async fn a_damaged_record_in_a_middle_segment_is_passed_over_with_one_alert_and_no_restart_loop() {
    use reqwest::Method;
    const RECORDS: u64 = 2_000;
    let (tag, dir) = scratch();
    let broker = servers::mosquitto(&dir, &[DEVICE]);
    let mut service = Service::new(&tag, broker.port, &dir);
    service.set("DEVICEHUB__COLLECTOR__SEGMENT_BYTES", "65536");
    let segments = write_journal(&dir.join("journal"), RECORDS, 65_536);
    assert!(segments.len() >= 5, "{segments:?}");
    // Bytes flipped in the first record of a middle segment (its topic).
    let (damaged, path) = segments[segments.len() / 2].clone();
    let mut bytes = std::fs::read(&path).unwrap();
    for b in &mut bytes[30..36] {
        *b ^= 0xff;
    }
    std::fs::write(&path, bytes).unwrap();

    service.start().await;
    // Every other record arrives, in every store, once.
    let store = ObjectStore::local(dir.join("archive"));
    let influx = service.influx();
    let expected: BTreeSet<u64> = (1..=RECORDS).filter(|n| *n != damaged).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let points = influx_points(&influx).await;
        let (raw, lake) = store_seqs(&store).await.unwrap_or_default();
        let (raw, lake): (BTreeSet<u64>, BTreeSet<u64>) =
            (raw.into_iter().collect(), lake.into_iter().collect());
        if points == RECORDS - 1 && raw == expected && lake == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{points} points, {} raw, {} lake of {}",
            raw.len(),
            lake.len(),
            RECORDS - 1
        );
        assert!(service.is_running(), "devicehub exited");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let journal_alerts = |alerts: &Value| -> Vec<Value> {
        alerts
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["alert_type"] == "journal_corrupt")
            .cloned()
            .collect()
    };
    let (_, alerts) = service.api(Method::GET, "/api/alerts", None).await;
    let found = journal_alerts(&alerts);
    assert_eq!(
        found.len(),
        1,
        "one alert for three sinks and the check at open: {alerts}"
    );
    assert_eq!(found[0]["severity"], "critical");
    let message = found[0]["message"].as_str().unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        message.contains(name) && message.contains(&format!("record {damaged} lost")),
        "{message}"
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", service.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("devicehub_journal_damaged_records_total 1"),
        "{metrics}"
    );
    let kept = std::fs::read_dir(dir.join("journal").join("corrupt"))
        .unwrap()
        .count();
    assert_eq!(kept, 1, "the damaged bytes are kept aside");

    // It runs on (no supervisor stop), and a restart neither loops nor alerts again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(service.is_running(), "devicehub exited");
    let (status, _) = service.terminate();
    assert!(status.success());
    service.start().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(service.is_running(), "devicehub exited after a restart");
    let (_, alerts) = service.api(Method::GET, "/api/alerts", None).await;
    assert_eq!(journal_alerts(&alerts).len(), 1, "{alerts}");
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

/// A tmpfs of `bytes` mounted at `dir` (the test runs as root, as the test script does).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, bytes: u64) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cannot mount a tmpfs at {}",
            dir.display()
        );
        Self(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test]
async fn the_journal_disk_filling_up_holds_acks_and_loses_nothing_once_freed() {
    let (tag, dir) = scratch();
    let broker = servers::mosquitto(&dir, &[DEVICE]);
    let disk = Tmpfs::mount(dir.join("journal-disk"), 8 * 1024 * 1024);
    let ballast = disk.0.join("ballast");
    // Most of the disk taken by something else: the journal runs out of room mid-stream.
    std::fs::write(&ballast, vec![0u8; 8 * 1024 * 1024 - 160 * 1024]).unwrap();
    let mut service = Service::new(&tag, broker.port, &dir);
    service.set(
        "DEVICEHUB__COLLECTOR__JOURNAL_DIR",
        disk.0.join("journal").display().to_string(),
    );
    service.set("DEVICEHUB__COLLECTOR__SEGMENT_BYTES", "32768");
    service.start().await;
    let publisher = stream(broker.port, &tag, Duration::from_millis(10));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(service.is_running(), "devicehub exited on a full disk");
    let points_while_full = influx_points(&service.influx()).await;
    assert!(
        points_while_full < MESSAGES,
        "the disk filled up before the stream ended"
    );
    std::fs::remove_file(&ballast).unwrap();
    let _client = publisher.await.unwrap();
    let store = ObjectStore::local(dir.join("archive"));
    assert_all_stored_once(&mut service, &store, 90).await;
    registry_saw_every_seq(&service).await;
    drop(service);
    drop(disk);
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}
