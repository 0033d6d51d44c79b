//! `devicehub doctor` and `GET /api/system/checks` against a whole stack of real servers: the
//! shipped broker configuration, InfluxDB, an S3 server, PostgreSQL, a router with its own
//! `CA:TRUE` certificate. Every line ok and exit 0 when all is well; each broken part named with
//! its fix and exit 1 when not; the running service unaffected either way.

use std::path::Path;
use std::process::{Command, Stdio};

use devicehub::domain::Role;
use serde_json::Value;

use crate::harness::services::{self as servers, free_port, tls_front};
use crate::harness::{scratch, spawn_app, token_for, TEST_SECRET};
use crate::mikrotik::{https_router_at, openssl_fingerprint, self_signed};

const BIN: &str = env!("CARGO_BIN_EXE_devicehub");

/// `devicehub doctor --json` with `env`: its exit status and report.
fn doctor(env: &[(String, String)]) -> (bool, Value) {
    let output = Command::new(BIN)
        .args(["doctor", "--json"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(
        report["ok"].as_bool(),
        Some(output.status.success()),
        "the exit status is the report's verdict: {report}"
    );
    (output.status.success(), report)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

fn replaced(env: &[(String, String)], changes: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
        .cloned()
        .collect();
    env.extend(changes.iter().map(|(k, v)| (k.to_string(), v.clone())));
    env
}

#[tokio::test]
async fn doctor_passes_on_a_whole_stack_and_names_each_broken_part_with_its_fix() {
    let app = spawn_app().await;
    let (tag, dir) = scratch();
    let broker = servers::mosquitto(&dir, &[]);
    let influx = servers::influxdb(&dir);
    std::fs::create_dir_all(dir.join("second")).unwrap();
    let mut stopped_influx = servers::influxdb(&dir.join("second"));
    let s3 = servers::s3(&dir);
    let (router_cert, router_key) = self_signed(&dir, "router");
    let (router_port, _router) = https_router_at(&dir, (&router_cert, &router_key), free_port());
    let metadata = dir.join("device_metadata.csv");
    std::fs::write(
        &metadata,
        "mac_address,device_type,owner,location,name\naa:bb:cc:00:00:01,tv,anna,living room,TV\n",
    )
    .unwrap();
    let http = free_port();
    let env: Vec<(String, String)> = [
        ("DEVICEHUB__DATABASE__URL", app.database_url()),
        ("DEVICEHUB__AUTH__JWT_SECRET", TEST_SECRET.to_owned()),
        ("DEVICEHUB__HTTP__BIND", format!("127.0.0.1:{http}")),
        ("DEVICEHUB__HTTP__WORKERS", "1".into()),
        ("DEVICEHUB__ROLES", "api,collector,pollers".into()),
        ("DEVICEHUB__MQTT__URL", servers::broker_url(broker.port)),
        (
            "DEVICEHUB__MQTT__CLIENT_ID",
            format!("devicehub-doctor-{tag}"),
        ),
        ("DEVICEHUB__INFLUXDB__API", "v1".into()),
        (
            "DEVICEHUB__INFLUXDB__URL",
            format!("http://127.0.0.1:{}", influx.port),
        ),
        ("DEVICEHUB__INFLUXDB__DATABASE", "devicehub".into()),
        ("DEVICEHUB__ARCHIVE__BACKEND", "s3".into()),
        (
            "DEVICEHUB__S3__ENDPOINT",
            format!("http://127.0.0.1:{}", s3.port),
        ),
        ("DEVICEHUB__S3__ACCESS_KEY", servers::S3_ACCESS_KEY.into()),
        ("DEVICEHUB__S3__SECRET_KEY", servers::S3_SECRET_KEY.into()),
        ("DEVICEHUB__S3__BUCKET", "iot-data".into()),
        (
            "DEVICEHUB__COLLECTOR__JOURNAL_DIR",
            dir.join("journal").display().to_string(),
        ),
        (
            "DEVICEHUB__MIKROTIK__URL",
            format!("https://127.0.0.1:{router_port}/rest"),
        ),
        (
            "DEVICEHUB__MIKROTIK__CA_FILE",
            router_cert.display().to_string(),
        ),
        (
            "DEVICEHUB__MIKROTIK__PASSWORD",
            "router-test-password".into(),
        ),
        (
            "DEVICEHUB__INVENTORY__METADATA_CSV",
            metadata.display().to_string(),
        ),
        ("DEVICEHUB__LOG__LEVEL", "error".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    // The service itself, running beside every doctor run (it creates the InfluxDB database and
    // the bucket, as on a first start).
    let mut service = Command::new(BIN)
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let ready = format!("http://127.0.0.1:{http}/readyz");
    let is_ready = || async {
        client
            .get(&ready)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    };
    for _ in 0..300 {
        if is_ready().await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(is_ready().await, "the service never became ready");

    // All is well: every line ok, exit 0.
    let (passed, report) = doctor(&env);
    assert!(passed, "{report:#}");
    for name in [
        "settings", "database", "broker", "influxdb", "archive", "journal", "router", "metadata",
    ] {
        assert_eq!(check(&report, name)["status"], "ok", "{name}: {report:#}");
    }
    assert!(
        check(&report, "router")["detail"]
            .as_str()
            .unwrap()
            .contains("2 DHCP leases"),
        "{report:#}"
    );
    assert!(check(&report, "database")["detail"]
        .as_str()
        .unwrap()
        .contains("migrations applied"));

    // Broken, each in its own way: InfluxDB stopped, wrong S3 keys, a wrong broker password, the
    // router pinned to another certificate, a metadata row that is no row.
    stopped_influx.stop();
    let (other_cert, _) = self_signed(&dir, "other");
    let bad_metadata = dir.join("bad_metadata.csv");
    std::fs::write(
        &bad_metadata,
        "mac_address,device_type,owner,location\naa:bb:cc:00:00:01,tv,anna,hall\nnot-a-mac,lamp,anna,hall\n",
    )
    .unwrap();
    let broken = replaced(
        &env,
        &[
            (
                "DEVICEHUB__INFLUXDB__URL",
                format!("http://127.0.0.1:{}", stopped_influx.port),
            ),
            ("DEVICEHUB__S3__SECRET_KEY", "not-the-secret".into()),
            (
                "DEVICEHUB__MQTT__URL",
                format!(
                    "mqtt://{}:wrong@127.0.0.1:{}",
                    servers::BROKER_USER,
                    broker.port
                ),
            ),
            ("DEVICEHUB__MIKROTIK__CA_FILE", String::new()),
            (
                "DEVICEHUB__MIKROTIK__FINGERPRINT",
                openssl_fingerprint(&other_cert),
            ),
            (
                "DEVICEHUB__INVENTORY__METADATA_CSV",
                bad_metadata.display().to_string(),
            ),
        ],
    );
    let (passed, report) = doctor(&broken);
    assert!(!passed, "{report:#}");
    let failed = |name: &str, detail: &str, fix: &str| {
        let c = check(&report, name);
        assert_eq!(c["status"], "failed", "{name}: {report:#}");
        assert!(
            c["detail"].as_str().unwrap().contains(detail),
            "{name}: {c}"
        );
        assert!(c["fix"].as_str().unwrap().contains(fix), "{name}: {c}");
    };
    failed(
        "influxdb",
        &stopped_influx.port.to_string(),
        "DEVICEHUB__INFLUXDB__URL",
    );
    failed("archive", "iot-data", "DEVICEHUB__S3__SECRET_KEY");
    failed("broker", "refused the login", "DEVICEHUB__MQTT__URL");
    failed(
        "router",
        &openssl_fingerprint(&router_cert),
        "DEVICEHUB__MIKROTIK__FINGERPRINT",
    );
    failed(
        "router",
        &openssl_fingerprint(&other_cert),
        "devicehub tls fingerprint",
    );
    failed("metadata", "line 3", &bad_metadata.display().to_string());
    for name in ["database", "journal", "settings"] {
        assert_eq!(check(&report, name)["status"], "ok", "{name}: {report:#}");
    }
    // The text form: one line per check, and the fix under what failed.
    let text = Command::new(BIN)
        .arg("doctor")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(broken.iter().cloned())
        .output()
        .unwrap();
    assert_eq!(text.status.code(), Some(1));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("FAILED") && l.contains("influxdb")),
        "{text}"
    );
    assert!(text.lines().any(|l| l.trim_start().starts_with("fix: ") && l.contains("DEVICEHUB__S3__SECRET_KEY")), "{text}");
    assert!(text.contains("checks failed"), "{text}");

    // The service was not disturbed, and an admin gets the same checks from it.
    assert!(
        is_ready().await,
        "the service is no longer ready after the doctor ran"
    );
    app.add_user("doctor-admin", "doctor-admin-password", Role::Admin)
        .await;
    let token = token_for(&app.pool, "doctor-admin", 600).await;
    let answer: Value = client
        .get(format!("http://127.0.0.1:{http}/api/system/checks"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["ok"], true, "{answer:#}");
    assert_eq!(check(&answer, "router")["status"], "ok");
    let system: Value = client
        .get(format!("http://127.0.0.1:{http}/api/system"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        system["roles"],
        serde_json::json!(["api", "collector", "pollers"])
    );
    let tasks: Vec<&str> = system["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        tasks.contains(&"api") && tasks.contains(&"mqtt source"),
        "{tasks:?}"
    );
    let viewer = client
        .get(format!("http://127.0.0.1:{http}/api/system/checks"))
        .bearer_auth(token_for(&app.pool, "test-viewer", 600).await)
        .send()
        .await
        .unwrap();
    assert_eq!(viewer.status(), 403);
    let _ = service.kill();
    let _ = service.wait();
    drop((influx, s3));
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}

/// A Shelly (Gen2, as its API documents `/shelly` and `Shelly.GetStatus`) and a HikVision camera
/// (`/ISAPI/System/deviceInfo`) as files under `www`, for `openssl s_server -WWW`.
fn device_answers(www: &Path) {
    std::fs::create_dir_all(www.join("rpc")).unwrap();
    std::fs::create_dir_all(www.join("ISAPI/System")).unwrap();
    std::fs::write(
        www.join("shelly"),
        r#"{"name":null,"id":"shellyplus1pm-441793d69718","mac":"441793D69718","slot":0,"model":"SNSW-001P16EU","gen":2,"fw_id":"20231107-164738/1.0.8-g","ver":"1.0.8","app":"Plus1PM","auth_en":false,"auth_domain":null}"#,
    )
    .unwrap();
    std::fs::write(
        www.join("rpc/Shelly.GetStatus"),
        r#"{"switch:0":{"id":0,"source":"init","output":false,"apower":0.0,"voltage":231.2,"current":0.0,"aenergy":{"total":12.3,"by_minute":[0.0,0.0,0.0],"minute_ts":1700000000},"temperature":{"tC":38.1,"tF":100.6}}}"#,
    )
    .unwrap();
    std::fs::write(
        www.join("ISAPI/System/deviceInfo"),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<DeviceInfo version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<deviceName>Front door</deviceName><deviceID>48443030-3637-3534-3837-4419b6aabbcc</deviceID>
<model>DS-2CD2143G2-I</model><serialNumber>DS-2CD2143G2-I20230101AAWRJ12345678</serialNumber>
<macAddress>44:19:b6:aa:bb:cc</macAddress><firmwareVersion>V5.7.3</firmwareVersion>
<deviceType>IPCamera</deviceType></DeviceInfo>"#,
    )
    .unwrap();
}

/// The servers people run with their own self-signed certificate (`openssl req -x509`, so
/// `CA:TRUE`): InfluxDB, S3 and the broker behind TLS, a Shelly and a camera serving HTTPS. Pinned
/// by `ca_file` or `fingerprint(s)`, each is trusted without `insecure`; another certificate at
/// the same address is refused, naming both fingerprints.
#[tokio::test]
async fn self_signed_certificates_of_stores_broker_and_devices_are_pinned_and_another_refused() {
    let app = spawn_app().await;
    let (tag, dir) = scratch();
    let broker = servers::mosquitto(&dir, &[]);
    let influx = servers::influxdb(&dir);
    let s3 = servers::s3(&dir);
    let (cert, key) = self_signed(&dir, "server");
    let (other, other_key) = self_signed(&dir, "other");
    let (pin, other_pin) = (openssl_fingerprint(&cert), openssl_fingerprint(&other));
    // What a first start creates: the InfluxDB database and the bucket, over plain connections.
    let mut plain = devicehub::configuration::Settings::load(None).unwrap();
    plain.influxdb.api = devicehub::configuration::InfluxApi::V1;
    plain.influxdb.url = format!("http://127.0.0.1:{}", influx.port);
    plain.influxdb.database = "devicehub".into();
    devicehub::stores::influxdb::InfluxClient::new(&plain.influxdb)
        .unwrap()
        .ensure_database()
        .await
        .unwrap();
    plain.s3.endpoint = Some(format!("http://127.0.0.1:{}", s3.port));
    plain.s3.access_key = Some(servers::S3_ACCESS_KEY.into());
    plain.s3.secret_key = Some(servers::S3_SECRET_KEY.into());
    plain.s3.bucket = "iot-data".into();
    let store = devicehub::stores::objects::ObjectStore::new(
        devicehub::stores::objects::S3Store::new(&plain.s3).unwrap(),
    );
    store.prepare().await.unwrap();

    let fronts = |cert: &Path, key: &Path| {
        (
            tls_front(influx.port, cert, key),
            tls_front(s3.port, cert, key),
            tls_front(broker.port, cert, key),
        )
    };
    let (influx_tls, s3_tls, broker_tls) = fronts(&cert, &key);
    let (influx_other, s3_other, broker_other) = fronts(&other, &other_key);
    let (device_dir, other_dir) = (dir.join("device"), dir.join("other-device"));
    let (device_port, _device) = https_router_at(&device_dir, (&cert, &key), free_port());
    let (other_port, _other_device) =
        https_router_at(&other_dir, (&other, &other_key), free_port());
    device_answers(&device_dir.join("www"));
    device_answers(&other_dir.join("www"));
    let metadata = dir.join("device_metadata.csv");
    std::fs::write(&metadata, "mac_address,device_type,owner,location\n").unwrap();

    let pinned: Vec<(String, String)> = [
        ("DEVICEHUB__DATABASE__URL", app.database_url()),
        ("DEVICEHUB__AUTH__JWT_SECRET", TEST_SECRET.to_owned()),
        ("DEVICEHUB__ROLES", "api,collector,pollers".into()),
        (
            "DEVICEHUB__COLLECTOR__JOURNAL_DIR",
            dir.join("journal").display().to_string(),
        ),
        (
            "DEVICEHUB__MQTT__CLIENT_ID",
            format!("devicehub-pinned-{tag}"),
        ),
        (
            "DEVICEHUB__MQTT__URL",
            format!(
                "mqtts://{}:{}@127.0.0.1:{broker_tls}",
                servers::BROKER_USER,
                servers::BROKER_PASSWORD
            ),
        ),
        ("DEVICEHUB__MQTT__FINGERPRINT", pin.clone()),
        ("DEVICEHUB__INFLUXDB__API", "v1".into()),
        (
            "DEVICEHUB__INFLUXDB__URL",
            format!("https://127.0.0.1:{influx_tls}"),
        ),
        ("DEVICEHUB__INFLUXDB__CA_FILE", cert.display().to_string()),
        ("DEVICEHUB__INFLUXDB__DATABASE", "devicehub".into()),
        ("DEVICEHUB__ARCHIVE__BACKEND", "s3".into()),
        (
            "DEVICEHUB__S3__ENDPOINT",
            format!("https://127.0.0.1:{s3_tls}"),
        ),
        ("DEVICEHUB__S3__FINGERPRINT", pin.clone()),
        ("DEVICEHUB__S3__ACCESS_KEY", servers::S3_ACCESS_KEY.into()),
        ("DEVICEHUB__S3__SECRET_KEY", servers::S3_SECRET_KEY.into()),
        ("DEVICEHUB__S3__BUCKET", "iot-data".into()),
        (
            "DEVICEHUB__SHELLY__HOSTS",
            format!("https://127.0.0.1:{device_port}"),
        ),
        (
            "DEVICEHUB__SHELLY__FINGERPRINTS",
            format!("{other_pin},{pin}"),
        ),
        (
            "DEVICEHUB__HIKVISION__HOSTS",
            format!("https://127.0.0.1:{device_port}"),
        ),
        ("DEVICEHUB__HIKVISION__CA_FILE", cert.display().to_string()),
        (
            "DEVICEHUB__INVENTORY__METADATA_CSV",
            metadata.display().to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let (passed, report) = doctor(&pinned);
    assert!(passed, "{report:#}");
    let shelly = format!("shelly https://127.0.0.1:{device_port}");
    let camera = format!("camera https://127.0.0.1:{device_port}");
    for name in ["broker", "influxdb", "archive", &shelly, &camera] {
        assert_eq!(check(&report, name)["status"], "ok", "{name}: {report:#}");
    }
    assert!(check(&report, &shelly)["detail"]
        .as_str()
        .unwrap()
        .contains("SNSW-001P16EU"));

    // The same pins, another certificate at each address: refused, both fingerprints named.
    let swapped = replaced(
        &pinned,
        &[
            (
                "DEVICEHUB__MQTT__URL",
                format!(
                    "mqtts://{}:{}@127.0.0.1:{broker_other}",
                    servers::BROKER_USER,
                    servers::BROKER_PASSWORD
                ),
            ),
            (
                "DEVICEHUB__INFLUXDB__URL",
                format!("https://127.0.0.1:{influx_other}"),
            ),
            (
                "DEVICEHUB__S3__ENDPOINT",
                format!("https://127.0.0.1:{s3_other}"),
            ),
            (
                "DEVICEHUB__SHELLY__HOSTS",
                format!("https://127.0.0.1:{other_port}"),
            ),
            ("DEVICEHUB__SHELLY__FINGERPRINTS", pin.clone()),
            (
                "DEVICEHUB__HIKVISION__HOSTS",
                format!("https://127.0.0.1:{other_port}"),
            ),
        ],
    );
    let (passed, report) = doctor(&swapped);
    assert!(!passed, "{report:#}");
    let shelly = format!("shelly https://127.0.0.1:{other_port}");
    let camera = format!("camera https://127.0.0.1:{other_port}");
    for (name, setting) in [
        ("broker", "mqtt.fingerprint"),
        ("influxdb", "influxdb.fingerprint"),
        ("archive", "s3.fingerprint"),
        (shelly.as_str(), "shelly.fingerprints"),
        (camera.as_str(), "hikvision.fingerprints"),
    ] {
        let c = check(&report, name);
        assert_eq!(c["status"], "failed", "{name}: {report:#}");
        let detail = c["detail"].as_str().unwrap();
        for needle in [&pin, &other_pin, &setting.to_owned()] {
            assert!(
                detail.contains(needle.as_str()),
                "{name} does not name {needle}: {detail}"
            );
        }
    }
    drop((broker, influx, s3));
    let _ = std::fs::remove_dir_all(&dir);
}
