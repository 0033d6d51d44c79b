//! The analytics models over a real lake (the collector's own Parquet writer, on disk and on the
//! test S3 server), run by DuckDB, answered by the API: fixtures whose answers are known by hand.

use chrono::{DateTime, NaiveDate, TimeDelta, TimeZone, Utc};
use devicehub::analytics::{Analytics, Quiet, RunReport, RunRequest};
use devicehub::configuration::{ArchiveBackend, Settings};
use devicehub::domain::{DeviceId, MetricName, Reading, Unit};
use devicehub::inventory::MetadataFile;
use devicehub::lake::{LakeRow, LakeWindow};
use devicehub::stores::objects::ObjectStore;
use serde_json::{json, Value};

use crate::harness::{s3_settings, spawn_app_with, test_settings, TestApp};

/// A past day, so that "today" never matters.
fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 2).unwrap()
}

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day().and_hms_opt(0, 0, 0).unwrap()) + TimeDelta::minutes(minutes)
}

/// One bronze reading: device, metric, unit, device time, value, and how long after it arrived.
#[derive(Clone)]
struct Sample {
    device: &'static str,
    metric: &'static str,
    unit: &'static str,
    ts: DateTime<Utc>,
    value: f64,
    delay: TimeDelta,
}

fn sample(
    device: &'static str,
    metric: &'static str,
    unit: &'static str,
    minute: i64,
    value: f64,
) -> Sample {
    Sample {
        device,
        metric,
        unit,
        ts: at(minute),
        value,
        delay: TimeDelta::seconds(1),
    }
}

/// Writes samples as the collector would: one lake window, named by its first journal number.
async fn write_bronze(objects: &ObjectStore, journal_no: u64, samples: &[Sample]) {
    let readings: Vec<(Reading, DateTime<Utc>)> = samples
        .iter()
        .map(|s| {
            (
                Reading {
                    device_id: DeviceId::parse(s.device).unwrap(),
                    time: s.ts,
                    metric: MetricName::parse(s.metric).unwrap(),
                    value: s.value,
                    unit: Some(Unit::parse(s.unit).unwrap()),
                },
                s.ts + s.delay,
            )
        })
        .collect();
    let rows: Vec<LakeRow<'_>> = readings
        .iter()
        .enumerate()
        .map(|(i, (reading, received_at))| LakeRow {
            reading,
            device_type: Some("plug"),
            seq: None,
            received_at: *received_at,
            topic: "iot/fixture/telemetry",
            journal_no: journal_no + i as u64,
        })
        .collect();
    let mut window = LakeWindow::new(journal_no);
    window.add(&rows).unwrap();
    for (key, bytes, _) in window.finish().unwrap() {
        objects.put(&key, bytes).await.unwrap();
    }
}

/// A 1,000 W load for the day, every minute, as each of the three energy sources.
fn steady_load() -> Vec<Sample> {
    let mut samples = Vec::new();
    for minute in 0..=1440 {
        // A counter of Wh and power: readings from 00:00 to the next 00:00.
        samples.push(sample(
            "load-counter",
            "switch0.energy",
            "Wh",
            minute,
            1000.0 * minute as f64 / 60.0,
        ));
        samples.push(sample("load-power", "power_usage", "W", minute, 1000.0));
        // Energy per one-minute interval, on the readings of the day.
        if minute < 1440 {
            samples.push(sample(
                "load-interval",
                "energy_consumption_wh",
                "Wh",
                minute,
                1000.0 / 60.0,
            ));
        }
    }
    samples
}

struct Lake {
    app: TestApp,
    objects: ObjectStore,
    analytics: Analytics,
}

impl Lake {
    async fn on(settings: Settings) -> Self {
        let app = spawn_app_with(settings).await;
        let objects = ObjectStore::from_settings(&app.settings).unwrap();
        objects.prepare().await.unwrap();
        let metadata = MetadataFile::load(&app.settings.inventory.metadata_csv).unwrap();
        let analytics = Analytics::new(&app.settings, app.pool.clone(), objects.clone(), metadata);
        Self {
            app,
            objects,
            analytics,
        }
    }

    async fn local() -> Self {
        Self::on(test_settings()).await
    }

    /// Silver and gold over the fixture's day and the next.
    async fn run(&self, full: bool) -> RunReport {
        let request = RunRequest {
            full,
            from: Some(day()),
            to: Some(day() + TimeDelta::days(1)),
            silver: true,
            gold: true,
        };
        self.analytics
            .run(&request, &Quiet)
            .await
            .expect("analytics run")
    }

    async fn get(&self, path: &str) -> Value {
        let response = self.app.get(path, &self.app.viewer).await;
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.unwrap()
    }

    /// `group_by=device` rows of the fixture's day, by device.
    async fn energy(&self) -> Vec<Value> {
        let d = day();
        let rows = self
            .get(&format!(
                "/api/analytics/energy/daily?from={d}&to={d}&group_by=device"
            ))
            .await;
        let mut rows = rows.as_array().unwrap().clone();
        rows.sort_by_key(|r| r["device_id"].as_str().unwrap().to_owned());
        rows
    }
}

fn kwh(row: &Value) -> f64 {
    row["energy_kwh"].as_f64().unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[tokio::test]
async fn a_1000_w_load_for_24_hours_is_24_kwh_from_any_energy_source() {
    let lake = Lake::local().await;
    write_bronze(&lake.objects, 1, &steady_load()).await;
    lake.run(false).await;
    let rows = lake.energy().await;
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["device_id"].as_str().unwrap(),
                r["method"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("load-counter", "counter"),
            ("load-interval", "interval"),
            ("load-power", "power")
        ]
    );
    for row in &rows {
        assert!(close(kwh(row), 24.0), "{row}");
        assert!(close(row["cost"].as_f64().unwrap(), 2.88), "{row}");
    }
    // The next day holds only the midnight readings, which end spans of the fixture's day.
    let next = day() + TimeDelta::days(1);
    let rows = lake
        .get(&format!(
            "/api/analytics/energy/daily?from={next}&to={next}"
        ))
        .await;
    assert_eq!(rows, json!([]));
    let summary = lake
        .get(&format!(
            "/api/analytics/summary?from={}&to={}",
            day(),
            day()
        ))
        .await;
    assert_eq!(summary.as_array().unwrap().len(), 1);
    assert!(
        close(summary[0]["total_kwh"].as_f64().unwrap(), 72.0),
        "{summary}"
    );
    assert!(
        close(summary[0]["total_cost"].as_f64().unwrap(), 8.64),
        "{summary}"
    );
    assert_eq!(summary[0]["active_devices"], 3);
}

#[tokio::test]
async fn a_counter_reset_mid_day_is_neither_negative_nor_doubled() {
    let lake = Lake::local().await;
    let mut samples = Vec::new();
    for minute in 0..=1440 {
        // 12 kWh by noon, then the device restarts its counter from zero.
        let minutes_since_reset = if minute <= 720 { minute } else { minute - 721 };
        let wh = 1000.0 * minutes_since_reset as f64 / 60.0;
        samples.push(sample(
            "reset-counter",
            "energy",
            "kWh",
            minute,
            wh / 1000.0,
        ));
    }
    write_bronze(&lake.objects, 1, &samples).await;
    lake.run(false).await;
    let rows = lake.energy().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["method"], "counter");
    // The reading after the reset (0 Wh, a minute after noon's) adds its own value: nothing.
    // 12 kWh before, and (1440 - 721) minutes after at 1 kW.
    let expected = 12.0 + (1440.0 - 721.0) / 60.0;
    assert!(close(kwh(&rows[0]), expected), "{}", rows[0]);
}

#[tokio::test]
async fn duplicate_replayed_and_late_readings_are_flagged_and_counted_once() {
    let lake = Lake::local().await;
    let interval: Vec<Sample> = (0..60)
        .map(|m| sample("dup-plug", "energy_consumption_wh", "Wh", m, 10.0))
        .collect();
    write_bronze(&lake.objects, 1, &interval).await;
    // A broker duplicate of the first ten (another journal record, received later).
    let mut copies = interval[..10].to_vec();
    for c in &mut copies {
        c.delay = TimeDelta::seconds(5);
    }
    write_bronze(&lake.objects, 1000, &copies).await;
    // The same window written again after a crash (same key: overwritten, not added).
    write_bronze(&lake.objects, 1, &interval).await;
    // Five readings of the day arriving three days late.
    let late: Vec<Sample> = (60..65)
        .map(|m| Sample {
            delay: TimeDelta::days(3),
            ..sample("dup-plug", "energy_consumption_wh", "Wh", m, 10.0)
        })
        .collect();
    write_bronze(&lake.objects, 2000, &late).await;
    lake.run(false).await;
    let rows = lake.energy().await;
    assert!(close(kwh(&rows[0]), 65.0 * 10.0 / 1000.0), "{}", rows[0]);
    let health = lake
        .get(&format!("/api/analytics/health?date={}", day()))
        .await;
    let plug = &health[0];
    assert_eq!(plug["device_id"], "dup-plug");
    assert_eq!(plug["readings"], 65);
    assert_eq!(plug["duplicates"], 10);
    assert_eq!(plug["late_readings"], 5);
    assert!(
        close(plug["late_share"].as_f64().unwrap(), 5.0 / 65.0),
        "{plug}"
    );
    // Silver holds one row per device, metric and time, with the copies counted.
    let silver = lake.app.settings.archive.dir.join(format!(
        "lake/silver/readings/date={}/hour=00/data.parquet",
        day()
    ));
    let db = duckdb::Connection::open_in_memory().unwrap();
    let (rows, distinct, copies, late): (i64, i64, i64, i64) = db
        .query_row(
            "SELECT count(*), count(DISTINCT (device_id, metric, ts)), sum(copies)::BIGINT,
                    count(*) FILTER (WHERE is_late_event)
             FROM read_parquet(?)",
            [silver.to_string_lossy()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((rows, distinct, copies, late), (60, 60, 70, 0));
    let late_hour = silver.to_string_lossy().replace("hour=00", "hour=01");
    let late_rows: i64 = db
        .query_row(
            "SELECT count(*) FILTER (WHERE is_late_event AND processing_delay_s >= 259200) FROM read_parquet(?)",
            [late_hour],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(late_rows, 5);
}

#[tokio::test]
async fn invalid_readings_are_left_out_of_gold_and_counted_in_quality() {
    let lake = Lake::local().await;
    let mut samples = Vec::new();
    for minute in 0..=60 {
        // 20 kW is outside power's 0..10,000 W: invalid, not integrated.
        let watts = if (10..20).contains(&minute) {
            20_000.0
        } else {
            600.0
        };
        samples.push(sample("odd-heater", "power", "W", minute, watts));
    }
    write_bronze(&lake.objects, 1, &samples).await;
    lake.app
        .register_with(json!({"device_id": "odd-heater", "device_name": "Heater",
                              "device_type": "heater", "location": "garage",
                              "metadata": {"manufacturer": "Acme", "model": "H1",
                                           "installed_on": "2026-10-03"}}))
        .await;
    lake.run(false).await;
    let rows = lake.energy().await;
    // The 20 kW readings are not integrated: the valid ones on either side (minutes 9 and 20)
    // are within max_gap_s, so the hour is 600 W throughout.
    assert!(close(kwh(&rows[0]), 0.6), "{}", rows[0]);
    assert_eq!(rows[0]["location"], "garage");
    assert_eq!(rows[0]["device_type"], "heater");
    let health = lake
        .get(&format!("/api/analytics/health?date={}", day()))
        .await;
    let heater = &health[0];
    assert_eq!(heater["invalid_readings"], 10);
    assert!(
        close(heater["valid_share"].as_f64().unwrap(), 51.0 / 61.0),
        "{heater}"
    );
    // Power above 5,000 W costs a record 0.2 of quality (seed 002); the device lacks nothing.
    let quality = (51.0 * 1.0 + 10.0 * 0.8) / 61.0;
    assert!(
        close(heater["quality_score"].as_f64().unwrap(), quality),
        "{heater}"
    );
    let health_score = 0.4 * quality + 0.3 * 51.0 / 61.0 + 0.2 * 1.0 + 0.1 * 1.0;
    assert!(
        close(heater["health_score"].as_f64().unwrap(), health_score),
        "{heater}"
    );
    // Silver knows its age from the installation date.
    let silver = lake.app.settings.archive.dir.join(format!(
        "lake/silver/readings/date={}/hour=00/data.parquet",
        day()
    ));
    let db = duckdb::Connection::open_in_memory().unwrap();
    let age: i64 = db
        .query_row(
            "SELECT max(device_age_days) FROM read_parquet(?)",
            [silver.to_string_lossy()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(age, 30);
}

#[tokio::test]
async fn a_rerun_changes_nothing_and_a_late_file_rebuilds_only_its_hour() {
    let lake = Lake::local().await;
    write_bronze(&lake.objects, 1, &steady_load()).await;
    let first = lake.run(false).await;
    assert_eq!(first.silver_hours, 25, "{first:?}");
    assert_eq!(first.gold_days, 2, "{first:?}");
    let before = lake.energy().await;
    let again = lake.run(false).await;
    assert_eq!(
        (again.new_files, again.silver_hours, again.gold_days),
        (0, 0, 0),
        "{again:?}"
    );
    let full = lake.run(true).await;
    assert_eq!(full.silver_hours, 25, "{full:?}");
    assert_eq!(lake.energy().await, before);
    // A late file with one extra interval reading at 13:30:30.
    let extra = Sample {
        ts: at(810) + TimeDelta::seconds(30),
        ..sample("load-interval", "energy_consumption_wh", "Wh", 810, 50.0)
    };
    write_bronze(&lake.objects, 5000, &[extra]).await;
    let late = lake.run(false).await;
    // Its hour and the hour after (whose rolling averages look back into it); its day and the
    // next (whose spans may start in it).
    assert_eq!(
        (late.new_files, late.silver_hours, late.gold_days),
        (1, 2, 2),
        "{late:?}"
    );
    let after = lake.energy().await;
    assert!(close(kwh(&after[1]), 24.05), "{}", after[1]);
    assert_eq!(after[0], before[0]);
}

#[tokio::test]
async fn the_models_run_with_the_lake_on_s3() {
    let mut settings = test_settings();
    settings.archive.backend = ArchiveBackend::S3;
    settings.s3 = s3_settings(None);
    let lake = Lake::on(settings).await;
    write_bronze(&lake.objects, 1, &steady_load()).await;
    lake.run(false).await;
    let rows = lake.energy().await;
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert!(close(kwh(row), 24.0), "{row}");
    }
    // The results are in the bucket, where Spark, Trino or DuckDB read them.
    let gold = lake.objects.list_all("lake/gold/").await.unwrap();
    assert!(
        gold.iter()
            .any(|o| o.filename
                == format!("lake/gold/energy_daily_device/date={}/data.parquet", day())),
        "{gold:?}"
    );
    let silver = lake
        .objects
        .list_all("lake/silver/readings/")
        .await
        .unwrap();
    assert_eq!(silver.len(), 25);
    // The local copy DuckDB read holds the fixture's days until a scheduled run, which keeps
    // only the look-back's: the bucket still has them, and the API still answers.
    let copy = lake.app.settings.analytics.work_dir.join("lake/lake");
    let copied = |table: &str| copy.join(format!("{table}/date={}", day())).exists();
    assert!(copied("readings") && copied("silver/readings"));
    lake.analytics
        .run(&RunRequest::layer(true), &Quiet)
        .await
        .unwrap();
    assert!(!copied("readings") && !copied("silver/readings"));
    assert_eq!(lake.energy().await, rows);
}

#[tokio::test]
async fn bad_parameters_are_400_and_an_empty_lake_answers_empty() {
    let lake = Lake::local().await;
    for path in [
        "/api/analytics/energy/daily?group_by=room",
        "/api/analytics/energy/daily?to=2026-11-31",
        "/api/analytics/summary?from=yesterday",
        "/api/analytics/health?date=2026-13-01",
    ] {
        let response = lake.app.get(path, &lake.app.viewer).await;
        crate::harness::assert_error(response, 400).await;
    }
    assert_eq!(lake.get("/api/analytics/energy/daily").await, json!([]));
    assert_eq!(lake.get("/api/analytics/health").await, json!([]));
    assert_eq!(lake.get("/api/analytics/summary").await, json!([]));
    // A wide range costs only the days the lake has; `from` after `to` is no days.
    write_bronze(&lake.objects, 1, &steady_load()).await;
    lake.run(false).await;
    let all = lake
        .get("/api/analytics/summary?from=0001-01-01&to=9999-12-31")
        .await;
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    let d = day();
    let none = lake
        .get(&format!(
            "/api/analytics/summary?from={d}&to={}",
            d - TimeDelta::days(1)
        ))
        .await;
    assert_eq!(none, json!([]));
    let response = lake.app.get("/api/analytics/summary", "not-a-token").await;
    crate::harness::assert_error(response, 401).await;
}

#[tokio::test]
async fn seed_002_records_over_mqtt_come_out_as_their_unique_energy() {
    let app = spawn_app_with(crate::harness::collector_settings()).await;
    let device = crate::harness::Device::connect(&[], None).await;
    let topic = app.topic("kitchen-plug", "telemetry");
    let now = Utc::now();
    // The hour of records ends now, or just before midnight when the test runs in the first hour
    // of a UTC day: one day's health holds them all (seen failing at 00:10).
    let midnight = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let end = match now - midnight < TimeDelta::minutes(62) {
        true => midnight - TimeDelta::minutes(1),
        false => now,
    };
    let mut unique_wh = 0.0;
    for i in 0..120 {
        let wh = 25.0 + f64::from(i % 7) * 1.5;
        unique_wh += wh;
        let record = json!({
            "device_id": "kitchen-plug", "device_type": "plug", "user_id": "user_001",
            "timestamp": (end - TimeDelta::seconds(30 * (120 - i64::from(i)))).to_rfc3339(),
            "temperature": 21.5, "power_usage": wh * 120.0, "energy_consumption_wh": wh,
            "status": "online", "alert": "none", "location": "kitchen",
            "manufacturer": "TP-Link", "model": "HS110",
        });
        device.publish_json(&topic, &record).await;
        // Every tenth record a second time, as a broker redelivery would.
        if i % 10 == 0 {
            device.publish_json(&topic, &record).await;
        }
    }
    let objects = ObjectStore::from_settings(&app.settings).unwrap();
    let metadata = MetadataFile::load(&app.settings.inventory.metadata_csv).unwrap();
    let analytics = Analytics::new(&app.settings, app.pool.clone(), objects, metadata);
    let today = now.date_naive();
    let request = RunRequest {
        full: false,
        from: Some(today - TimeDelta::days(1)),
        to: Some(today),
        silver: true,
        gold: true,
    };
    let path = format!(
        "/api/analytics/energy/daily?from={}&to={today}&group_by=device",
        today - TimeDelta::days(1)
    );
    let expected_kwh = unique_wh / 1000.0;
    let mut rows = json!([]);
    for _ in 0..60 {
        analytics
            .run(&request, &Quiet)
            .await
            .expect("analytics run");
        rows = app.get(&path, &app.viewer).await.json().await.unwrap();
        let total: f64 = rows.as_array().unwrap().iter().map(kwh).sum();
        if (total - expected_kwh).abs() <= expected_kwh * 0.001 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let total: f64 = rows.as_array().unwrap().iter().map(kwh).sum();
    assert!(
        (total - expected_kwh).abs() <= expected_kwh * 0.001,
        "{total} kWh against {expected_kwh}: {rows}"
    );
    for row in rows.as_array().unwrap() {
        assert_eq!(row["device_id"], "kitchen-plug", "{rows}");
        assert_eq!(row["method"], "interval", "{rows}");
        let cost = row["cost"].as_f64().unwrap();
        assert!((cost - kwh(row) * 0.12).abs() < 1e-6, "{row}");
    }
    let health = app.get("/api/analytics/health", &app.viewer).await;
    let health: Value = health.json().await.unwrap();
    let plug = health
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["device_id"] == "kitchen-plug")
        .expect("the plug's health");
    // Twelve records came twice, three readings each (v1 has no seq for the collector to drop
    // repeats by): silver kept one of each, and counted the copies.
    assert_eq!(plug["duplicates"], 36, "{plug}");
    assert_eq!(plug["readings"], 360, "{plug}");
}

#[tokio::test]
async fn a_lake_file_duckdb_cannot_read_is_left_out_and_the_rest_is_built() {
    let lake = Lake::local().await;
    write_bronze(&lake.objects, 1, &steady_load()).await;
    let folder = format!("lake/readings/date={}", day());
    lake.objects
        .put(
            &format!("{folder}/part-90000000000000000000.parquet"),
            b"not parquet at all".to_vec(),
        )
        .await
        .unwrap();
    // A real file cut short, as a disk that filled up would leave it.
    let whole = lake
        .objects
        .get(&format!("{folder}/part-00000000000000000001.parquet"))
        .await
        .unwrap()
        .unwrap();
    lake.objects
        .put(
            &format!("{folder}/part-90000000000000000001.parquet"),
            whole[..whole.len() / 2].to_vec(),
        )
        .await
        .unwrap();
    let report = lake.run(false).await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.new_files, 4, "{report:?}");
    let rows = lake.energy().await;
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert!(close(kwh(row), 24.0), "{row}");
    }
}

#[tokio::test]
async fn the_analytics_command_builds_the_lake_and_says_what_it_did() {
    let lake = Lake::local().await;
    write_bronze(&lake.objects, 1, &steady_load()).await;
    let settings = &lake.app.settings;
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_devicehub"))
            .args(["analytics", "run"])
            .args(args)
            .env("DEVICEHUB__DATABASE__URL", lake.app.database_url())
            .env("DEVICEHUB__ARCHIVE__DIR", &settings.archive.dir)
            .env(
                "DEVICEHUB__ANALYTICS__WORK_DIR",
                &settings.analytics.work_dir,
            )
            .output()
            .unwrap()
    };
    let (from, to) = (day().to_string(), (day() + TimeDelta::days(1)).to_string());
    let output = run(&["--from", &from, "--to", &to]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("2 dates, 2 new bronze files, 25 silver hours (4322 rows), 2 gold days"),
        "{stdout}"
    );
    let rows = lake.energy().await;
    assert!(rows.iter().all(|r| close(kwh(r), 24.0)), "{rows:?}");
    // Nothing changed: nothing built.
    let output = run(&["--from", &from, "--to", &to]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("0 new bronze files, 0 silver hours (0 rows), 0 gold days"),
        "{stdout}"
    );
    let output = run(&["--from", &to, "--to", &from]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is after"));
}

#[tokio::test]
async fn rolling_averages_are_over_a_true_hour_not_a_number_of_rows() {
    let lake = Lake::local().await;
    // A reading every 30 s for two hours; the value is the minute of the day.
    let samples: Vec<Sample> = (0..240)
        .map(|i| Sample {
            ts: at(0) + TimeDelta::seconds(30 * i),
            ..sample("hall-sensor", "temperature", "°C", 0, i as f64 / 2.0)
        })
        .collect();
    write_bronze(&lake.objects, 1, &samples).await;
    lake.run(false).await;
    let silver = lake.app.settings.archive.dir.join(format!(
        "lake/silver/readings/date={}/hour=01/data.parquet",
        day()
    ));
    let db = duckdb::Connection::open_in_memory().unwrap();
    // At 01:30 the hour back to 00:30 holds 121 readings, 30.0 to 90.0: their mean is 60 (seed
    // 002's 60 rows would give 75.25).
    let avg: f64 = db
        .query_row(
            "SELECT avg_1h FROM read_parquet(?) WHERE epoch_us(ts) = ?",
            duckdb::params![silver.to_string_lossy(), at(90).timestamp_micros()],
            |r| r.get(0),
        )
        .unwrap();
    assert!(close(avg, 60.0), "{avg}");
}

#[tokio::test]
async fn a_days_gold_from_hourly_summaries_is_what_its_readings_give() {
    let lake = Lake::local().await;
    // Power at irregular times: gaps within hours, across hour boundaries, one longer than
    // max_gap_s (15 min), and a span across midnight (23:59 → 00:01).
    let minutes = [
        0.0, 0.5, 1.5, 3.0, 7.0, 50.0, 59.5, 60.5, 62.0, 65.0, 75.0, 130.0, 131.0, 500.0, 501.0,
        509.0, 1430.0, 1439.0, 1441.0,
    ];
    let samples: Vec<Sample> = minutes
        .iter()
        .enumerate()
        .map(|(i, &m)| Sample {
            ts: at(0) + TimeDelta::milliseconds((m * 60_000.0) as i64),
            ..sample("odd-meter", "power", "W", 0, 600.0 + 10.0 * i as f64)
        })
        .collect();
    write_bronze(&lake.objects, 1, &samples).await;
    lake.run(false).await;
    // By hand: trapezoids between readings at most 900 s apart, the last span half on the day.
    let seconds: Vec<f64> = minutes.iter().map(|m| m * 60.0).collect();
    let watts = |i: usize| 600.0 + 10.0 * i as f64;
    let mut wh = 0.0;
    for i in 1..seconds.len() {
        let gap = seconds[i] - seconds[i - 1];
        let span = if gap <= 900.0 {
            (watts(i) + watts(i - 1)) / 2.0 * gap / 3600.0
        } else {
            0.0
        };
        wh += if seconds[i] > 86_400.0 {
            span * 0.5
        } else {
            span
        };
    }
    let rows = lake.energy().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        close(kwh(&rows[0]), (wh / 1000.0 * 1e6).round() / 1e6),
        "{} vs {wh} Wh",
        rows[0]
    );
    assert_eq!(rows[0]["method"], "power");
    // Every span ending on the day, and the part of the one across midnight.
    assert_eq!(rows[0]["readings"], minutes.len() - 1);
    // The cadence is the median time between the day's readings (18 of them: 17 gaps, the
    // middle one), the hours' gaps and those between hours together.
    let mut gaps: Vec<f64> = seconds[..18].windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    let health = lake
        .get(&format!("/api/analytics/health?date={}", day()))
        .await;
    assert_eq!(health[0]["device_id"], "odd-meter");
    assert_eq!(health[0]["readings"], 18);
    assert_eq!(health[0]["cadence_s"].as_f64(), Some(gaps[8]), "{gaps:?}");
    // One more reading makes the number of gaps even: the mean of the two middle ones.
    let extra = Sample {
        ts: at(0) + TimeDelta::seconds(20),
        ..sample("odd-meter", "power", "W", 0, 600.0)
    };
    write_bronze(&lake.objects, 100, &[extra]).await;
    lake.run(false).await;
    let mut seconds = seconds[..18].to_vec();
    seconds.push(20.0);
    seconds.sort_by(f64::total_cmp);
    let mut gaps: Vec<f64> = seconds.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    let health = lake
        .get(&format!("/api/analytics/health?date={}", day()))
        .await;
    assert_eq!(health[0]["readings"], 19);
    assert_eq!(
        health[0]["cadence_s"].as_f64(),
        Some((gaps[8] + gaps[9]) / 2.0),
        "{gaps:?}"
    );
}

#[tokio::test]
async fn an_hour_duckdb_cannot_build_waits_with_the_hour_after_it_for_the_next_run() {
    let lake = Lake::local().await;
    let load: Vec<Sample> = (0..180)
        .map(|m| sample("hall-heater", "power", "W", m, 600.0))
        .collect();
    write_bronze(&lake.objects, 1, &load).await;
    // A file with readings in hour 01 whose footer reads (the catalog knows its span) but whose
    // pages are damaged, as a bad disk would leave them.
    let extra: Vec<Sample> = (60..70)
        .map(|m| Sample {
            ts: at(m) + TimeDelta::seconds(30),
            ..sample("hall-heater", "power", "W", m, 600.0)
        })
        .collect();
    write_bronze(&lake.objects, 1000, &extra).await;
    let key = format!(
        "lake/readings/date={}/part-00000000000000001000.parquet",
        day()
    );
    let whole = lake.objects.get(&key).await.unwrap().unwrap();
    let mut bytes = whole.clone();
    let footer = u32::from_le_bytes(bytes[bytes.len() - 8..bytes.len() - 4].try_into().unwrap());
    let pages_end = bytes.len() - 8 - footer as usize;
    for b in &mut bytes[4..pages_end] {
        *b ^= 0x5a;
    }
    lake.objects.put(&key, bytes).await.unwrap();
    let report = lake.run(false).await;
    // Hour 01 fails; hour 02 would look back into hour 01's missing silver, so it waits too.
    let failed: Vec<&str> = report
        .failed
        .iter()
        .map(|f| f.split(':').next().unwrap_or_default())
        .collect();
    let part = |h: u32| format!("silver {}T{h:02}", day());
    assert_eq!(failed, [part(1), part(2)], "{report:?}");
    assert!(report.failed[1].contains("the hour before"), "{report:?}");
    // The file is mended: the next run builds both hours, and the day is whole.
    lake.objects.put(&key, whole).await.unwrap();
    let report = lake.run(false).await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.silver_hours, 2, "{report:?}");
    let rows = lake.energy().await;
    // 600 W from 00:00 to 02:59: 1.79 kWh.
    assert!(close(kwh(&rows[0]), 0.6 * 179.0 / 60.0), "{}", rows[0]);
}
