//! devicehub as a real process: [`binary`] (a command serving the API over a test app's
//! database) and [`Service`] (the whole service over its own database, broker and stores, which a
//! test starts, stops, kills and restarts while it watches what was stored).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use devicehub::stores::influxdb::InfluxClient;
use serde_json::Value;

use super::services::{self as servers, free_port};
use super::{TestApp, TEST_SECRET};

/// The binary under test: this build's, or `DEVICEHUB_BIN` (benchmarks run the release build).
fn bin() -> String {
    std::env::var("DEVICEHUB_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_devicehub").to_owned())
}

/// The real devicehub binary set to serve the API over `app`'s database on a free port, for what
/// only a process of its own shows (its log lines, its memory): a command to add settings and
/// output to, and its port. `tag` names its InfluxDB database, MQTT client and archive.
pub fn binary(app: &TestApp, tag: &str) -> (std::process::Command, u16) {
    let port = free_port();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_devicehub"));
    command
        .arg("serve")
        .env("DEVICEHUB__DATABASE__URL", app.database_url())
        .env("DEVICEHUB__HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("DEVICEHUB__HTTP__WORKERS", "1")
        .env("DEVICEHUB__AUTH__JWT_SECRET", TEST_SECRET)
        .env("DEVICEHUB__ROLES", "api")
        .env(
            "DEVICEHUB__MQTT__CLIENT_ID",
            format!("devicehub-{tag}-{port}"),
        )
        .env("DEVICEHUB__INFLUXDB__API", "v1")
        .env(
            "DEVICEHUB__INFLUXDB__DATABASE",
            format!("devicehub_test_{tag}_{port}"),
        )
        .env(
            "DEVICEHUB__ARCHIVE__DIR",
            std::env::temp_dir().join(format!("dh-{tag}-{port}")),
        )
        .env_remove("RUST_LOG");
    (command, port)
}

/// A fresh tag and scratch directory for one test's real process.
pub fn scratch() -> (String, PathBuf) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let dir = std::env::temp_dir().join(format!("devicehub-fault-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    (tag, dir)
}

pub struct Service {
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub http: u16,
    /// The token generation of the tests' user (read at start).
    generation: i64,
}

impl Service {
    pub fn new(tag: &str, broker_port: u16, dir: &Path) -> Self {
        let http = free_port();
        let env = [
            (
                "DEVICEHUB__DATABASE__URL",
                format!("postgres://postgres@127.0.0.1:5432/devicehub_test_{tag}"),
            ),
            ("DEVICEHUB__HTTP__BIND", format!("127.0.0.1:{http}")),
            ("DEVICEHUB__HTTP__WORKERS", "1".into()),
            ("DEVICEHUB__AUTH__JWT_SECRET", super::TEST_SECRET.into()),
            ("DEVICEHUB__MQTT__URL", servers::broker_url(broker_port)),
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
            ("DEVICEHUB__ARCHIVE__BATCH__TIMEOUT_MS", "1000".into()),
            (
                "DEVICEHUB__COLLECTOR__JOURNAL_DIR",
                dir.join("journal").display().to_string(),
            ),
            ("DEVICEHUB__LOG__LEVEL", "error".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            env,
            child: None,
            http,
            generation: 0,
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.into()));
    }

    pub fn influx(&self) -> InfluxClient {
        let get = |key: &str| {
            self.env
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let mut settings = super::test_settings().influxdb;
        settings.url = get("DEVICEHUB__INFLUXDB__URL").unwrap();
        settings.database = get("DEVICEHUB__INFLUXDB__DATABASE").unwrap();
        settings.username = get("DEVICEHUB__INFLUXDB__USERNAME");
        settings.password = get("DEVICEHUB__INFLUXDB__PASSWORD").map(Into::into);
        InfluxClient::new(&settings).unwrap()
    }

    /// Calls the API as an admin: the status and the JSON body (`Null` when there is none).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let token =
            devicehub::auth::TokenIssuer::new(&secrecy::SecretString::from(super::TEST_SECRET), 60)
                .issue(&devicehub::auth::Session {
                    username: "fault-test".into(),
                    role: devicehub::domain::Role::Admin,
                    generation: self.generation,
                    login: None,
                })
                .unwrap();
        let mut request = reqwest::Client::new()
            .request(method, format!("http://127.0.0.1:{}{path}", self.http))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The ingest counters of `GET /api/stats`.
    pub async fn ingest_stats(&self) -> Value {
        self.api(reqwest::Method::GET, "/api/stats", None).await.1["ingest"].clone()
    }

    /// The process's resident memory, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        self.memory("VmRSS:")
    }

    /// The most memory the process has held at once.
    pub fn peak_rss_bytes(&self) -> u64 {
        self.memory("VmHWM:")
    }

    fn memory(&self, line: &str) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(line))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }

    /// Whether the process is still alive (it must never exit on its own).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    pub async fn start(&mut self) {
        let child = Command::new(bin())
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let client = reqwest::Client::new();
        // Generous: the whole suite runs in parallel on two cores.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client
                .get(format!("http://127.0.0.1:{}/readyz", self.http))
                .send()
                .await;
            if ready.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(self.is_running(), "devicehub exited while starting");
            assert!(
                Instant::now() < deadline,
                "devicehub did not become ready in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The user of the tests' tokens (see `api`).
        let pool = sqlx::PgPool::connect(&self.database_url()).await.unwrap();
        sqlx::query(
            "INSERT INTO users (username, password_hash, role) \
             VALUES ('fault-test', 'placeholder-never-verified', 'admin') \
             ON CONFLICT (username) DO NOTHING",
        )
        .execute(&pool)
        .await
        .unwrap();
        self.generation =
            sqlx::query_scalar("SELECT token_generation FROM users WHERE username = 'fault-test'")
                .fetch_one(&pool)
                .await
                .unwrap();
        pool.close().await;
    }

    pub fn database_url(&self) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == "DEVICEHUB__DATABASE__URL")
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    /// SIGTERM, then waits for the exit: its status and how long it took.
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().expect("running");
        let asked = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, asked.elapsed());
            }
            if asked.elapsed() > Duration::from_secs(30) {
                child.kill().unwrap();
                panic!("devicehub did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
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
