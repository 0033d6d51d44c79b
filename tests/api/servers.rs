//! Servers of a test's own, for fault tests that stop them: Mosquitto with known queue limits,
//! an InfluxDB 1.x and an S3 server (s3s-fs), each on free ports with data in the test's
//! directory, so that stopping one never disturbs another test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server process that can be stopped (SIGTERM, as a service manager would) and started
/// again on the same port with the same data.
pub struct Server {
    what: &'static str,
    command: Box<dyn Fn() -> Command + Send + Sync>,
    child: Option<Child>,
    pub port: u16,
}

impl Server {
    fn spawn(
        what: &'static str,
        port: u16,
        command: impl Fn() -> Command + Send + Sync + 'static,
    ) -> Self {
        let mut server = Self {
            what,
            command: Box::new(command),
            child: None,
            port,
        };
        server.start();
        server
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.what);
        let child = (self.command)()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.what));
        self.child = Some(child);
        wait_for_port(self.port, self.what);
    }

    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err(),
            "{} still answers",
            self.what
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Mosquitto whose queues for a persistent session are unlimited: the collector's session must
/// be able to hold everything published while devicehub is down.
pub fn mosquitto(dir: &Path) -> Server {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\npersistence false\n"),
    )
    .unwrap();
    Server::spawn("mosquitto", port, move || {
        let mut command = Command::new("mosquitto");
        command.arg("-c").arg(&conf);
        command
    })
}

/// InfluxDB 1.x (Debian's `influxd`) with its data under `dir`.
pub fn influxdb(dir: &Path) -> Server {
    influxdb_with(dir, 25_000_000, false)
}

/// [`influxdb`] refusing write bodies over `max_body_bytes` with 413.
pub fn influxdb_with_body_limit(dir: &Path, max_body_bytes: usize) -> Server {
    influxdb_with(dir, max_body_bytes, false)
}

/// [`influxdb`] that wants credentials (401 without).
pub fn influxdb_with_auth(dir: &Path) -> Server {
    influxdb_with(dir, 25_000_000, true)
}

fn influxdb_with(dir: &Path, max_body_bytes: usize, auth: bool) -> Server {
    let (port, rpc) = (free_port(), free_port());
    let data: PathBuf = dir.join("influxdb");
    let conf = dir.join("influxdb.conf");
    std::fs::write(
        &conf,
        format!(
            r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{data}/meta"
[data]
  dir = "{data}/data"
  wal-dir = "{data}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
  max-body-size = {max_body_bytes}
  auth-enabled = {auth}
[ifql]
  enabled = false
[logging]
  level = "warn"
"#,
            data = data.display()
        ),
    )
    .unwrap();
    Server::spawn("influxd", port, move || {
        let mut command = Command::new("influxd");
        command.arg("-config").arg(&conf);
        command
    })
}

pub const S3_ACCESS_KEY: &str = "fault-test-key";
pub const S3_SECRET_KEY: &str = "fault-test-secret";

/// An S3 server (s3s-fs, installed by the test script) with its objects under `dir`.
pub fn s3(dir: &Path) -> Server {
    let port = free_port();
    let root = dir.join("s3");
    std::fs::create_dir_all(&root).unwrap();
    let bin = std::env::var("DEVICEHUB_TEST_S3FS").unwrap_or_else(|_| {
        format!(
            "{}/.cache/devicehub/tools/bin/s3s-fs",
            std::env::var("HOME").unwrap()
        )
    });
    Server::spawn("s3s-fs", port, move || {
        let mut command = Command::new(&bin);
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(&root);
        command
    })
}
