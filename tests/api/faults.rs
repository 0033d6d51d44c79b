//! Fault tests: devicehub as a real process, killed and restarted mid-stream.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_devicehub");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Mosquitto of the test's own, so that its queue limits are known: the collector's session
/// must be able to hold everything published while devicehub is down.
struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    fn start(dir: &Path) -> Self {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\npersistence false\n"),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto");
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Service {
    env: Vec<(String, String)>,
    child: Option<Child>,
    http: u16,
}

impl Service {
    fn new(tag: &str, broker_port: u16, dir: &Path) -> Self {
        let http = free_port();
        let env = [
            (
                "DEVICEHUB__DATABASE__URL",
                format!("postgres://postgres@127.0.0.1:5432/devicehub_test_{tag}"),
            ),
            ("DEVICEHUB__HTTP__BIND", format!("127.0.0.1:{http}")),
            ("DEVICEHUB__HTTP__WORKERS", "1".into()),
            (
                "DEVICEHUB__AUTH__JWT_SECRET",
                crate::helpers::TEST_SECRET.into(),
            ),
            (
                "DEVICEHUB__MQTT__URL",
                format!("mqtt://127.0.0.1:{broker_port}"),
            ),
            (
                "DEVICEHUB__MQTT__CLIENT_ID",
                format!("devicehub-fault-{tag}"),
            ),
            ("DEVICEHUB__INFLUXDB__API", "v1".into()),
            ("DEVICEHUB__INFLUXDB__URL", "http://127.0.0.1:8086".into()),
            (
                "DEVICEHUB__INFLUXDB__DATABASE",
                format!("devicehub_test_{tag}"),
            ),
            (
                "DEVICEHUB__ARCHIVE__DIR",
                dir.join("archive").display().to_string(),
            ),
            ("DEVICEHUB__ARCHIVE__FLUSH_INTERVAL_SECS", "1".into()),
            (
                "DEVICEHUB__COLLECTOR__JOURNAL_DIR",
                dir.join("journal").display().to_string(),
            ),
            ("DEVICEHUB__LOG__LEVEL", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            env,
            child: None,
            http,
        }
    }

    async fn start(&mut self) {
        let child = Command::new(BIN)
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = client
                .get(format!("http://127.0.0.1:{}/readyz", self.http))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "devicehub did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        // SIGKILL: no chance to flush or say goodbye.
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn archived_seqs(archive: &Path, device: &str) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut stack = vec![archive.join(device)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path: PathBuf = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let objects: Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                for o in objects.as_array().unwrap() {
                    seqs.push(o["payload"]["seq"].as_u64().unwrap());
                }
            }
        }
    }
    seqs
}

#[tokio::test]
async fn sigkill_and_restart_mid_stream_loses_and_duplicates_nothing() {
    const MESSAGES: u64 = 10_000;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("devicehub-fault-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let broker = Broker::start(&dir);
    let mut service = Service::new(&tag, broker.port, &dir);
    service.start().await;

    let mut options =
        rumqttc::MqttOptions::new(format!("fault-device-{tag}"), "127.0.0.1", broker.port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(200);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 1000);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let base = Utc::now() - chrono::Duration::minutes(30);
    let publisher = tokio::spawn(async move {
        for seq in 1..=MESSAGES {
            let ts = (base + chrono::Duration::milliseconds(seq as i64)).to_rfc3339();
            let body = json!({"v": 2, "device_id": "train-7", "ts": ts, "seq": seq, "msg_type": "telemetry",
                              "measurements": [{"ts": ts, "type": "voltage_ac", "val": 25_000.0 + seq as f64, "unit": "V"}]});
            client
                .publish(
                    "iot/train-7/telemetry",
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    body.to_string(),
                )
                .await
                .unwrap();
            if seq % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        client
    });
    // Kill devicehub while the stream is under way, and bring it back.
    tokio::time::sleep(Duration::from_millis(400)).await;
    service.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    service.start().await;
    let _client = publisher.await.unwrap();

    let influx = {
        let mut s = crate::helpers::test_settings().influxdb;
        s.database = format!("devicehub_test_{tag}");
        devicehub::sinks::influxdb::InfluxClient::new(&s).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let series = influx
            .query("SELECT count(\"value\") FROM \"iot_telemetry\" WHERE \"device_id\" = 'train-7'")
            .await
            .unwrap_or_default();
        let points = series
            .first()
            .and_then(|s| s.values.first())
            .and_then(|row| row.get(1))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let archived = archived_seqs(&dir.join("archive"), "train-7");
        if points == MESSAGES && archived.len() as u64 == MESSAGES {
            let distinct: BTreeSet<u64> = archived.into_iter().collect();
            assert_eq!(
                distinct.len() as u64,
                MESSAGES,
                "every message archived once"
            );
            break;
        }
        assert!(
            points <= MESSAGES && archived.len() as u64 <= MESSAGES,
            "duplicates: {points} points, {} archived",
            archived.len()
        );
        assert!(
            Instant::now() < deadline,
            "after 60 s: {points} points in InfluxDB, {} archived, of {MESSAGES}",
            archived.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The registry saw the whole sequence without a gap.
    let pool = sqlx::PgPool::connect(&format!(
        "postgres://postgres@127.0.0.1:5432/devicehub_test_{tag}"
    ))
    .await
    .unwrap();
    let gaps: i64 =
        sqlx::query_scalar("SELECT count(*) FROM alerts WHERE alert_type = 'sequence_gap'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(gaps, 0);
    let last: i64 =
        sqlx::query_scalar("SELECT last_seq FROM device_sequences WHERE device_id = 'train-7'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(last as u64, MESSAGES);
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}
