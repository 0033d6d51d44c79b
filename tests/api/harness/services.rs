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
    /// The signal `stop` sends (a service manager's stop: TERM, or INT for PostgreSQL's fast
    /// shutdown, which does not wait for clients to leave).
    stop_signal: &'static str,
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
            stop_signal: "TERM",
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
            .arg(format!("-{}", self.stop_signal))
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

/// devicehub's broker user in [`mosquitto`], and its password.
pub const BROKER_USER: &str = "devicehub";
pub const BROKER_PASSWORD: &str = "broker-test-password";
/// The password of every device user in [`mosquitto`].
pub const DEVICE_PASSWORD: &str = "device-test-password";

/// Mosquitto as devicehub ships it: `config/mosquitto/mosquitto.conf` and its ACL file, with
/// only the port (loopback) and the paths changed. No anonymous access: the password file holds
/// devicehub's user ([`BROKER_USER`]) and one user per entry of `devices` (the device id, with
/// [`DEVICE_PASSWORD`]).
pub fn mosquitto(dir: &Path, devices: &[&str]) -> Server {
    mosquitto_with(dir, devices, plain_only)
}

/// The shipped plain listener on `port` (loopback), and its TLS listener left out.
fn plain_only(line: &str, port: u16) -> Option<String> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("listener"), Some("1883")) => Some(format!("listener {port} 127.0.0.1")),
        (Some("listener"), _) => Some(String::new()),
        (Some("cafile" | "certfile" | "keyfile" | "tls_version" | "require_certificate"), _) => {
            Some(String::new())
        }
        _ => None,
    }
}

/// The shipped configuration with the paths changed, and each line `listener` rewrites
/// (given the line and the port) replaced.
fn mosquitto_with(
    dir: &Path,
    devices: &[&str],
    listener: impl Fn(&str, u16) -> Option<String>,
) -> Server {
    let port = free_port();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mosquitto");
    let data = dir.join("mosquitto-data");
    std::fs::create_dir_all(&data).unwrap();
    let passwd = dir.join("mosquitto-passwd");
    let mut users = format!("{BROKER_USER}:{BROKER_PASSWORD}\n");
    for device in devices {
        users.push_str(&format!("{device}:{DEVICE_PASSWORD}\n"));
    }
    std::fs::write(&passwd, users).unwrap();
    let hashed = Command::new("mosquitto_passwd")
        .arg("-U")
        .arg(&passwd)
        .status()
        .expect("mosquitto_passwd (Debian package mosquitto)");
    assert!(hashed.success());
    let config = std::fs::read_to_string(shipped.join("mosquitto.conf")).unwrap();
    let mut rewritten = String::new();
    for line in config.lines() {
        if let Some(replaced) = listener(line, port) {
            rewritten.push_str(&replaced);
            rewritten.push('\n');
            continue;
        }
        let line = match line.split_whitespace().next() {
            Some("persistence_location") => format!("persistence_location {}/", data.display()),
            Some("password_file") => format!("password_file {}", passwd.display()),
            Some("acl_file") => format!("acl_file {}", shipped.join("acl").display()),
            Some("log_dest") => format!("log_dest file {}", data.join("mosquitto.log").display()),
            _ => line.to_owned(),
        };
        rewritten.push_str(&line);
        rewritten.push('\n');
    }
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, rewritten).unwrap();
    // Started as root, Mosquitto runs as its own user: let it write its data.
    let _ = Command::new("chown")
        .arg("-R")
        .arg("mosquitto:")
        .arg(&data)
        .stderr(Stdio::null())
        .status();
    Server::spawn("mosquitto", port, move || {
        let mut command = Command::new("mosquitto");
        command.arg("-c").arg(&conf);
        command
    })
}

/// Certificates of a test's own CA, made with `openssl`: the CA, the broker's (for
/// 127.0.0.1) and a client's.
pub struct Certificates {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub fn certificates(dir: &Path) -> Certificates {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let openssl = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(&certs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=devicehub-test-ca",
    ]);
    // X.509 v3 certificates (rustls takes no other), with their purpose.
    std::fs::write(
        certs.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(certs.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for name in ["server", "client"] {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ]);
        let ext = format!("{name}.ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }
    // Mosquitto reads its key as its own user.
    let _ = Command::new("chown")
        .args(["-R", "mosquitto:"])
        .arg(&certs)
        .stderr(Stdio::null())
        .status();
    Certificates {
        ca: certs.join("ca.crt"),
        server_cert: certs.join("server.crt"),
        server_key: certs.join("server.key"),
        client_cert: certs.join("client.crt"),
        client_key: certs.join("client.key"),
    }
}

/// [`mosquitto`] with the shipped TLS listener on the port instead of the plain one, with
/// `certs` and `require_certificate true`.
pub fn mosquitto_tls(dir: &Path, devices: &[&str], certs: &Certificates) -> Server {
    let files = (&*certs.ca, &*certs.server_cert, &*certs.server_key);
    mosquitto_tls_with(dir, devices, files, true)
}

/// The shipped TLS listener (`listener 8883` and its settings as shipped, but for the port and
/// the certificate paths) on the port, the plain one left out; `require_client` switches on
/// `require_certificate`.
pub fn mosquitto_tls_with(
    dir: &Path,
    devices: &[&str],
    (ca, cert, key): (&Path, &Path, &Path),
    require_client: bool,
) -> Server {
    let (ca, cert, key) = (ca.to_owned(), cert.to_owned(), key.to_owned());
    // Mosquitto reads its key as its own user.
    for file in [&ca, &cert, &key] {
        let _ = Command::new("chown")
            .arg("mosquitto:")
            .arg(file)
            .stderr(Stdio::null())
            .status();
    }
    mosquitto_with(dir, devices, move |line, port| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("listener"), Some("8883")) => Some(format!("listener {port} 127.0.0.1")),
            (Some("listener"), _) => Some(String::new()),
            (Some("cafile"), _) => Some(format!("cafile {}", ca.display())),
            (Some("certfile"), _) => Some(format!("certfile {}", cert.display())),
            (Some("keyfile"), _) => Some(format!("keyfile {}", key.display())),
            (Some("require_certificate"), _) if require_client => {
                Some("require_certificate true".into())
            }
            _ => None,
        }
    })
}

/// [`mosquitto`] with its queue, inflight, size and persistence settings but open to anonymous
/// clients and without ACLs, as on a trusted LAN: for a flood of device ids that no password
/// file would hold.
pub fn mosquitto_anonymous(dir: &Path) -> Server {
    mosquitto_with(dir, &[], |line, port| {
        match line.split_whitespace().next() {
            Some("allow_anonymous") => Some("allow_anonymous true".into()),
            Some("password_file" | "acl_file") => Some(String::new()),
            _ => plain_only(line, port),
        }
    })
}

/// Options for a connection to [`mosquitto`] as `device` (its user), with `client_id`.
pub fn device_options(port: u16, device: &str, client_id: String) -> rumqttc::MqttOptions {
    let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", port);
    options.set_credentials(device, DEVICE_PASSWORD);
    options
}

/// devicehub's `mqtt.url` for [`mosquitto`].
pub fn broker_url(port: u16) -> String {
    format!("mqtt://{BROKER_USER}:{BROKER_PASSWORD}@127.0.0.1:{port}")
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

/// A PostgreSQL cluster of the test's own (Debian's `initdb` and `postgres`, run as the
/// `postgres` system user, as the test script runs as root), with trust auth on loopback; its
/// URL is `postgres://postgres@127.0.0.1:{port}`.
pub fn postgres(dir: &Path) -> Server {
    let port = free_port();
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Debian's PostgreSQL server")
        .flatten()
        .map(|e| e.path().join("bin"))
        .max()
        .unwrap();
    let data = dir.join("postgres");
    std::fs::create_dir_all(&data).unwrap();
    let _ = Command::new("chown")
        .arg("-R")
        .arg("postgres:")
        .arg(dir)
        .status();
    let as_postgres = |program: PathBuf| {
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        command
    };
    let initdb = as_postgres(bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .stdout(Stdio::null())
        .status()
        .expect("initdb");
    assert!(initdb.success());
    let postgres = bin.join("postgres");
    let mut server = Server::spawn("postgres", port, move || {
        let mut command = as_postgres(postgres.clone());
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", data.display()));
        command
    });
    server.stop_signal = "INT";
    server
}

/// A TLS front for a plain server on `target` (InfluxDB, S3, the broker, as a reverse proxy or
/// the server's own TLS would serve it), presenting `cert` with `key` (PEM files), on a port of
/// its own, in a thread of its own (so a test that blocks on a child process does not stall it).
/// It stops with the test process.
pub fn tls_front(target: u16, cert: &Path, key: &Path) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends here: that is the test.
                    let Ok(mut client) = acceptor.accept(client).await else {
                        return;
                    };
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
    });
    port
}
