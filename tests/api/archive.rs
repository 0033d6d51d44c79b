//! The archive and the Parquet lake, on a real S3 server (s3s-fs) and on a local directory.

use std::collections::BTreeSet;

use arrow_array::{Array, Float64Array, RecordBatch, StringArray, UInt64Array};
use chrono::Utc;
use devicehub::configuration::ArchiveBackend;
use devicehub::lake::{readings_schema, READINGS_PREFIX};
use devicehub::stores::objects::{ObjectStore, S3Store};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{json, Value};

use crate::harness::{assert_error, collector_settings, s3_settings, spawn_app_with, Device};

/// The rows of one lake file (a window file is one record batch).
fn rows(parquet: Vec<u8>) -> RecordBatch {
    let mut batches: Vec<RecordBatch> =
        ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(parquet))
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect();
    assert_eq!(batches.len(), 1, "one record batch per window file");
    batches.remove(0)
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("column {name}"))
        .as_any()
        .downcast_ref::<T>()
        .unwrap()
}

fn datagram(device: &str, seq: u64) -> Value {
    let now = Utc::now();
    let measurements: Vec<Value> = (0..5)
        .flat_map(|i| {
            let ts = (now - chrono::Duration::seconds(5 - i)).to_rfc3339();
            [
                json!({"ts": ts, "type": "voltage_dc", "val": 750.0 + i as f64, "unit": "V"}),
                json!({"ts": ts, "type": "current_dc", "val": 100.0 + i as f64, "unit": "A"}),
            ]
        })
        .collect();
    json!({"v": 2, "device_id": device, "ts": now.to_rfc3339(), "seq": seq, "msg_type": "telemetry", "measurements": measurements})
}

/// Waits until `store` holds lake files with `rows` rows in all, and returns them.
async fn lake_rows(store: &ObjectStore, expected: usize) -> Vec<RecordBatch> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut batches = Vec::new();
        for object in store
            .list(&format!("{READINGS_PREFIX}/"), 1000)
            .await
            .unwrap()
        {
            assert!(
                object.filename.contains("/date=") && object.filename.ends_with(".parquet"),
                "{}",
                object.filename
            );
            batches.push(rows(store.get(&object.filename).await.unwrap().unwrap()));
        }
        let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if total >= expected {
            assert_eq!(total, expected, "no duplicate rows");
            return batches;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{total} of {expected} lake rows after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn s3_backend_creates_its_bucket_and_holds_raw_objects_and_the_parquet_lake() {
    let mut settings = collector_settings();
    settings.archive.backend = ArchiveBackend::S3;
    settings.s3 = s3_settings(None);
    let s3 = ObjectStore::new(S3Store::new(&settings.s3).unwrap());
    assert!(s3.check().await.is_err(), "the bucket does not exist yet");
    let app = spawn_app_with(settings.clone()).await;
    s3.check().await.expect("devicehub created the bucket");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    let status = ready.status();
    assert_eq!(status, 200, "{}", ready.text().await.unwrap());

    app.register_with(
        json!({"device_id": "meter-s3", "device_name": "DC meter", "device_type": "dc_meter"}),
    )
    .await;
    let device = Device::connect(&[], None).await;
    let payload = datagram("meter-s3", 1);
    device
        .publish_json(&app.topic("meter-s3", "telemetry"), &payload)
        .await;

    let objects = app
        .eventually("/api/devices/meter-s3/raw-data", 10, |b| {
            b.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let filename = objects[0]["filename"].as_str().unwrap();
    assert!(filename.starts_with("meter-s3/date="), "{filename}");
    assert!(objects[0]["size"].as_u64().unwrap() > 100);
    let raw: Value = app
        .get(
            &format!("/api/devices/meter-s3/raw-data/{filename}"),
            &app.viewer,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(raw[0]["payload"], payload, "the payload as received");
    assert_eq!(raw[0]["topic"], app.topic("meter-s3", "telemetry"));
    let missing = app
        .get(
            "/api/devices/meter-s3/raw-data/date=2001-01-01/nothing.json",
            &app.viewer,
        )
        .await;
    assert_error(missing, 404).await;

    let store = s3;
    let batches = lake_rows(&store, 10).await;
    let batch = &batches[0];
    assert_eq!(batch.schema(), readings_schema());
    let devices = column::<StringArray>(batch, "device_id");
    let types = column::<StringArray>(batch, "device_type");
    let metrics = column::<StringArray>(batch, "metric");
    let values = column::<Float64Array>(batch, "value");
    let seqs = column::<UInt64Array>(batch, "seq");
    for i in 0..batch.num_rows() {
        assert_eq!(devices.value(i), "meter-s3");
        assert_eq!(types.value(i), "dc_meter", "device_type from the registry");
        assert_eq!(seqs.value(i), 1);
    }
    let voltages: Vec<f64> = (0..batch.num_rows())
        .filter(|&i| metrics.value(i) == "voltage_dc")
        .map(|i| values.value(i))
        .collect();
    assert_eq!(voltages, [750.0, 751.0, 752.0, 753.0, 754.0]);

    // The InfluxDB points carry the device_type tag too.
    let series = app
        .eventually(
            "/api/devices/meter-s3/metrics?start=-5m&metric=voltage_dc",
            5,
            |b| b.as_array().is_some_and(|a| a.len() == 5),
        )
        .await;
    assert_eq!(series[0]["device_id"], "meter-s3");
    let influx = devicehub::stores::influxdb::InfluxClient::new(&app.settings.influxdb).unwrap();
    let tagged = influx
        .query("SELECT count(\"value\") FROM \"iot_telemetry\" WHERE \"device_type\" = 'dc_meter'")
        .await
        .unwrap();
    assert_eq!(tagged[0].values[0][1], 10);
}

#[tokio::test]
async fn local_backend_writes_the_lake_as_hive_partitioned_parquet_files() {
    let app = spawn_app_with(collector_settings()).await;
    let device = Device::connect(&[], None).await;
    for seq in 1..=3 {
        device
            .publish_json(
                &app.topic("meter-local", "telemetry"),
                &datagram("meter-local", seq),
            )
            .await;
    }
    let store = ObjectStore::local(app.settings.archive.dir.clone());
    let batches = lake_rows(&store, 30).await;
    let mut seen = BTreeSet::new();
    for batch in &batches {
        let seqs = column::<UInt64Array>(batch, "seq");
        let journal = column::<UInt64Array>(batch, "journal_no");
        let types = column::<StringArray>(batch, "device_type");
        for i in 0..batch.num_rows() {
            seen.insert((seqs.value(i), journal.value(i)));
            assert!(types.is_null(i), "an auto-registered device has no type");
        }
    }
    let seqs: BTreeSet<u64> = seen.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, BTreeSet::from([1, 2, 3]));
    // On disk the lake is a plain Hive tree that any Parquet reader opens.
    let date = Utc::now().format("%Y-%m-%d").to_string();
    let dir = app
        .settings
        .archive
        .dir
        .join(READINGS_PREFIX)
        .join(format!("date={date}"));
    assert!(std::fs::read_dir(&dir).unwrap().count() >= 1, "{dir:?}");
}

#[tokio::test]
async fn a_device_called_lake_does_not_see_the_lake_as_its_raw_data() {
    let app = spawn_app_with(collector_settings()).await;
    let device = Device::connect(&[], None).await;
    device
        .publish_json(&app.topic("lake", "telemetry"), &datagram("lake", 1))
        .await;
    let objects = app
        .eventually("/api/devices/lake/raw-data", 10, |b| {
            b.as_array().is_some_and(|a| !a.is_empty())
        })
        .await;
    let store = ObjectStore::local(app.settings.archive.dir.clone());
    lake_rows(&store, 10).await;
    let listed = app
        .get("/api/devices/lake/raw-data", &app.viewer)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(listed, objects);
    for object in listed.as_array().unwrap() {
        let name = object["filename"].as_str().unwrap();
        assert!(
            name.starts_with("lake/date=") && name.ends_with(".json"),
            "{name}"
        );
    }
    let lake_file = app
        .get("/api/devices/lake/raw-data/readings", &app.viewer)
        .await;
    assert_error(lake_file, 404).await;
}

#[tokio::test]
async fn a_busy_day_is_listed_newest_first_hour_by_hour_on_s3() {
    let mut settings = collector_settings();
    settings.archive.backend = ArchiveBackend::S3;
    settings.s3 = s3_settings(None);
    let app = spawn_app_with(settings.clone()).await;
    app.register("busy").await;
    let store = ObjectStore::new(S3Store::new(&settings.s3).unwrap());
    // 1,300 objects of one day across 13 hours: more than one listing page.
    let objects: Vec<(String, Vec<u8>)> = (0..1300u64)
        .map(|i| {
            let (hour, second) = (i / 100, i % 100);
            let key = format!(
                "busy/date=2026-02-12/20260212T{hour:02}{:02}{:02}Z-{i:020}.json",
                second / 60,
                second % 60
            );
            (key, b"[]\n".to_vec())
        })
        .collect();
    assert!(store.put_all(objects).await.is_empty());
    let listed = app
        .get("/api/devices/busy/raw-data?limit=150", &app.viewer)
        .await
        .json::<Value>()
        .await
        .unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 150);
    assert!(
        names[0].ends_with("-00000000000000001299.json"),
        "{}",
        names[0]
    );
    assert!(
        names[149].ends_with("-00000000000000001150.json"),
        "{}",
        names[149]
    );
    assert!(names.windows(2).all(|w| w[0] > w[1]), "newest first");
}
