//! The Mikrotik poller against a RouterOS REST emulator of the test's own (basic auth, RouterOS's
//! string-typed JSON, a router with only the older `wireless` package), and the router's
//! certificate trust against an HTTPS server (`openssl s_server`) with a certificate of a
//! private CA.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use arrow_array::{Array, Int32Array, StringArray, TimestampMicrosecondArray};
use devicehub::clients::mikrotik::{MikrotikClient, PollError};
use devicehub::configuration::{MikrotikSettings, ProcessRole};
use devicehub::inventory::snapshots::{LEASES_PREFIX, WIFI_PREFIX};
use devicehub::sources::mikrotik::MikrotikPoller;
use devicehub::stores::objects::ObjectStore;
use secrecy::SecretString;
use serde_json::json;

use crate::harness::services::{self as servers, free_port};
use crate::harness::{spawn_app, spawn_app_with, test_settings};

const PASSWORD: &str = "router-test-password";

fn leases() -> serde_json::Value {
    json!([
        {".id": "*1", "address": "192.168.88.10", "mac-address": "A8:03:2A:B1:C2:D4",
         "client-id": "1:a8:3:2a:b1:c2:d4", "host-name": "shellypro4pm-a8032ab1c2d4",
         "status": "bound", "dynamic": "true", "disabled": "false", "blocked": "false",
         "server": "defconf", "last-seen": "1m9s", "expires-after": "8m51s",
         "active-address": "192.168.88.10"},
        {".id": "*2", "address": "192.168.88.20", "mac-address": "aa:bb:cc:dd:ee:ff",
         "status": "waiting", "dynamic": "false", "disabled": "true", "blocked": "false",
         "last-seen": "never"},
    ])
}

async fn lease(req: HttpRequest) -> HttpResponse {
    // admin:router-test-password
    let expected = "Basic YWRtaW46cm91dGVyLXRlc3QtcGFzc3dvcmQ=";
    if req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        != Some(expected)
    {
        return HttpResponse::Unauthorized().json(json!({"error": 401, "message": "Unauthorized"}));
    }
    HttpResponse::Ok().json(leases())
}

/// A router with the older `wireless` package: the `wifi` menu is 404 (as RouterOS answers).
async fn wireless() -> HttpResponse {
    HttpResponse::Ok().json(
        json!([{"mac-address": "AA:BB:CC:DD:EE:FF", "interface": "wlan1",
        "signal-strength": "-71@6Mbps", "uptime": "5m"}]),
    )
}

fn router() -> (u16, actix_web::dev::ServerHandle) {
    let port = free_port();
    let server = HttpServer::new(|| {
        App::new()
            .route("/rest/ip/dhcp-server/lease", web::get().to(lease))
            .route(
                "/rest/interface/wireless/registration-table",
                web::get().to(wireless),
            )
            .default_service(web::to(|| async {
                HttpResponse::NotFound().json(json!({"error": 404, "message": "Not Found"}))
            }))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (port, handle)
}

fn settings(url: &str) -> MikrotikSettings {
    let mut settings = test_settings().mikrotik;
    settings.url = Some(url.to_owned());
    settings.password = Some(SecretString::from(PASSWORD));
    settings.interval_s = 1;
    settings
}

/// The rows of every Parquet file under `prefix` in `store`, as one batch per file.
async fn snapshots(store: &ObjectStore, prefix: &str) -> Vec<arrow_array::RecordBatch> {
    let mut batches = Vec::new();
    for object in store.list(&format!("{prefix}/"), 1000).await.unwrap() {
        let bytes = store.get(&object.filename).await.unwrap().unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(bytes),
        )
        .unwrap()
        .build()
        .unwrap();
        batches.extend(reader.map(Result::unwrap));
    }
    batches
}

fn strings<'a>(batch: &'a arrow_array::RecordBatch, column: &str) -> &'a StringArray {
    batch
        .column_by_name(column)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
}

#[tokio::test]
async fn the_poller_keeps_every_lease_and_wifi_poll_as_a_snapshot_in_the_lake() {
    let (port, router) = router();
    let url = format!("http://127.0.0.1:{port}/rest");
    let mut app_settings = test_settings();
    app_settings.roles = vec![ProcessRole::Api, ProcessRole::Pollers];
    app_settings.mikrotik = settings(&url);
    let archive = app_settings.archive.dir.clone();
    let _app = spawn_app_with(app_settings).await;
    let store = ObjectStore::local(archive);

    // Polled every second: wait for two snapshots of each table.
    let deadline = Instant::now() + Duration::from_secs(15);
    let (leases, wifi) = loop {
        let leases = snapshots(&store, LEASES_PREFIX).await;
        let wifi = snapshots(&store, WIFI_PREFIX).await;
        if leases.len() >= 2 && wifi.len() >= 2 {
            break (leases, wifi);
        }
        assert!(
            Instant::now() < deadline,
            "{} lease and {} Wi-Fi snapshots",
            leases.len(),
            wifi.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let first = &leases[0];
    assert_eq!(first.num_rows(), 2);
    let macs = strings(first, "mac");
    assert_eq!(
        (macs.value(0), macs.value(1)),
        ("A8:03:2A:B1:C2:D4", "AA:BB:CC:DD:EE:FF")
    );
    let hosts = strings(first, "host_name");
    assert_eq!(hosts.value(0), "shellypro4pm-a8032ab1c2d4");
    assert!(hosts.is_null(1), "no host-name: the client sent none");
    let time = |column: &str| {
        first
            .column_by_name(column)
            .unwrap()
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap()
            .clone()
    };
    let (polled, seen, expires) = (time("polled_at"), time("last_seen"), time("expires_at"));
    assert_eq!(
        polled.value(0) - seen.value(0),
        69_000_000,
        "last seen 1m9s before the poll"
    );
    assert_eq!(expires.value(0) - polled.value(0), 531_000_000);
    assert!(seen.is_null(1), "never seen");
    let signal = wifi[0]
        .column_by_name("signal_dbm")
        .unwrap()
        .as_any()
        .downcast_ref::<Int32Array>()
        .unwrap();
    assert_eq!(signal.value(0), -71);
    assert_eq!(strings(&wifi[0], "interface").value(0), "wlan1");

    // A wrong password is the router's 401, and nothing is stored for that poll.
    let mut wrong = settings(&url);
    wrong.password = Some(SecretString::from("wrong"));
    let unused = ObjectStore::local(std::env::temp_dir().join("unused"));
    let inventory = devicehub::inventory::Inventory::new(
        unused.clone(),
        devicehub::inventory::MetadataFile::load(Path::new("config/device_metadata.csv")).unwrap(),
        1,
    )
    .unwrap();
    let poller = MikrotikPoller::new(&wrong, &url, unused, (_app.pool.clone(), inventory)).unwrap();
    let refused = poller.poll_once().await.unwrap_err().to_string();
    assert!(refused.contains("401"), "{refused}");
    router.stop(true).await;
}

pub(crate) struct HttpsRouter(Child);

impl Drop for HttpsRouter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `openssl s_server -WWW` serving the lease answer as a file, with a certificate of a
/// private CA (as a router's self-signed one: no system root knows it).
fn https_router(dir: &Path, certs: &servers::Certificates) -> (u16, HttpsRouter) {
    https_router_at(dir, (&certs.server_cert, &certs.server_key), free_port())
}

/// [`https_router`] with the certificate and key given, on `port`.
pub(crate) fn https_router_at(
    dir: &Path,
    (cert, key): (&Path, &Path),
    port: u16,
) -> (u16, HttpsRouter) {
    let www = dir.join("www/rest/ip/dhcp-server");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("lease"), leases().to_string()).unwrap();
    let log = dir.join(format!("s_server-{port}.log"));
    let mut child = Command::new("openssl")
        // On loopback IPv4 only: the port was found free there (not on [::]).
        .args([
            "s_server",
            "-quiet",
            "-WWW",
            "-accept",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .current_dir(dir.join("www"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("openssl");
    // A loaded machine (the whole suite at once) can take a while to start it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "openssl s_server on {port} exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "openssl s_server did not start on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (port, HttpsRouter(child))
}

#[tokio::test]
async fn a_router_certificate_no_root_knows_is_refused_unless_its_ca_is_given_or_insecure_is_set() {
    let dir = std::env::temp_dir().join(format!(
        "devicehub-mikrotik-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let certs = servers::certificates(&dir);
    let (port, _router) = https_router(&dir, &certs);
    let url = format!("https://127.0.0.1:{port}/rest");

    let refused = MikrotikClient::new(&settings(&url), &url)
        .unwrap()
        .leases()
        .await
        .unwrap_err();
    assert!(matches!(refused, PollError::Request(_)), "{refused}");
    assert!(
        refused.to_string().to_lowercase().contains("certificate"),
        "{refused}"
    );

    let mut trusted = settings(&url);
    trusted.ca_file = Some(certs.ca.clone());
    let leases = MikrotikClient::new(&trusted, &url)
        .unwrap()
        .leases()
        .await
        .unwrap();
    assert_eq!(leases.len(), 2);

    let mut insecure = settings(&url);
    insecure.insecure = true;
    let leases = MikrotikClient::new(&insecure, &url)
        .unwrap()
        .leases()
        .await
        .unwrap();
    assert_eq!(leases.len(), 2);
    let _ = std::fs::remove_dir_all(dir);
}

/// A router's own certificate as RouterOS's `/certificate sign` and `openssl req -x509` make it:
/// self-signed, `CA:TRUE`. Returns its PEM certificate and key.
pub(crate) fn self_signed(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=router.lan",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success());
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("CA:TRUE"),
        "openssl req -x509 makes a CA:TRUE certificate"
    );
    (cert, key)
}

/// The SHA-256 fingerprint openssl reports for a PEM certificate, as `sha256:AB:…`.
pub(crate) fn openssl_fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let hex = text.trim().rsplit('=').next().unwrap().to_owned();
    format!("sha256:{hex}")
}

#[tokio::test]
async fn a_routers_own_ca_true_certificate_is_pinned_by_ca_file_or_fingerprint_and_another_refused()
{
    let dir = std::env::temp_dir().join(format!(
        "devicehub-pinned-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = self_signed(&dir, "router");
    let expected = openssl_fingerprint(&cert);
    let (port, router) = https_router_at(&dir, (&cert, &key), free_port());
    let url = format!("https://127.0.0.1:{port}/rest");

    // Pinned by the file holding the router's own certificate (rustls alone refuses it:
    // CaUsedAsEndEntity)...
    let mut by_file = settings(&url);
    by_file.ca_file = Some(cert.clone());
    let leases = MikrotikClient::new(&by_file, &url)
        .unwrap()
        .leases()
        .await
        .unwrap();
    assert_eq!(leases.len(), 2);
    // ...or by its fingerprint, as `devicehub tls fingerprint` prints it.
    let shown = Command::new(env!("CARGO_BIN_EXE_devicehub"))
        .args(["tls", "fingerprint", &url])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(shown.contains(&expected), "{shown}");
    assert!(shown.contains("CA:TRUE"), "{shown}");
    assert!(
        shown.contains(&format!("DEVICEHUB__MIKROTIK__FINGERPRINT={expected}")),
        "{shown}"
    );
    let mut by_fingerprint = settings(&url);
    by_fingerprint.fingerprint = Some(expected.clone());
    let leases = MikrotikClient::new(&by_fingerprint, &url)
        .unwrap()
        .leases()
        .await
        .unwrap();
    assert_eq!(leases.len(), 2);

    // Another certificate at the same address: refused, naming both fingerprints.
    drop(router);
    let (other_cert, other_key) = self_signed(&dir, "impostor");
    let presented = openssl_fingerprint(&other_cert);
    let (_, _impostor) = https_router_at(&dir, (&other_cert, &other_key), port);
    for pinned in [&by_file, &by_fingerprint] {
        let refused = MikrotikClient::new(pinned, &url)
            .unwrap()
            .leases()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains(&expected) && refused.contains(&presented),
            "{refused}"
        );
        assert!(refused.contains("mikrotik.fingerprint"), "{refused}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_malformed_metadata_file_stops_start_up_naming_its_line() {
    let dir = std::env::temp_dir().join(format!(
        "devicehub-metadata-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("device_metadata.csv");
    std::fs::write(
        &csv,
        "mac_address,device_type,owner,location\n11:22:33:44:55:66,tv,family,living room\nnot-a-mac,phone,anna,home\n",
    )
    .unwrap();
    let mut settings = test_settings();
    settings.roles = vec![ProcessRole::Api, ProcessRole::Pollers];
    settings.inventory.metadata_csv = csv.clone();
    let error = devicehub::startup::Application::build(settings.clone())
        .await
        .err()
        .expect("start-up refused")
        .to_string();
    assert!(
        error.contains("line 3") && error.contains("not-a-mac"),
        "{error}"
    );

    // Fixed, it starts.
    std::fs::write(&csv, "mac_address,device_type,owner,location,name\naa-bb-cc-dd-ee-ff,phone,anna,home,Anna's phone\n").unwrap();
    assert!(devicehub::startup::Application::build(settings)
        .await
        .is_ok());
    let _ = std::fs::remove_dir_all(dir);
}

/// A router that is not up yet when devicehub starts (the simulator's, a router rebooting) is
/// asked again within seconds, not an interval later: the inventory fills as soon as it answers.
#[tokio::test]
async fn a_router_that_comes_up_after_devicehub_is_polled_within_seconds_not_an_interval() {
    let app = spawn_app().await;
    let dir =
        std::env::temp_dir().join(format!("devicehub-late-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = self_signed(&dir, "router");
    let port = free_port();
    let url = format!("https://127.0.0.1:{port}/rest");
    let mut late = settings(&url);
    late.ca_file = Some(cert.clone());
    late.interval_s = 60;
    let store = ObjectStore::local(dir.join("archive"));
    let inventory = devicehub::inventory::Inventory::new(
        store.clone(),
        devicehub::inventory::MetadataFile::load(Path::new("config/device_metadata.csv")).unwrap(),
        1,
    )
    .unwrap();
    let poller = MikrotikPoller::new(&late, &url, store, (app.pool.clone(), inventory)).unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(poller.run(shutdown.clone()));
    // The first poll finds no router.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hosts = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM network_hosts")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    assert_eq!(hosts().await, 0);
    let started = Instant::now();
    let (_, _router) = https_router_at(&dir, (&cert, &key), port);
    while hosts().await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the router was not asked again within 15 s (interval 60 s)"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shutdown.cancel();
    running.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
