//! Devices on the LAN that fail the way real ones do — no answer, 500, malformed JSON or XML, a
//! closed connection, a silent alert stream — are counted by outcome and, after repeated
//! failures, marked offline with an alert, while a healthy device beside them keeps its cadence.
//! The devices are raw TCP servers of the test's own, so each fault is exactly what goes on the
//! wire.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use devicehub::configuration::ProcessRole;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{collector_settings, spawn_app_with, TestApp};

const OK: u8 = 0;
const HANG: u8 = 1;
const ERROR_500: u8 = 2;
const MALFORMED: u8 = 3;
const CLOSE: u8 = 4;
const SILENT: u8 = 5;

/// A device whose behaviour the test switches: `mode` is one of the constants above.
struct Device {
    address: String,
    mode: Arc<AtomicU8>,
}

async fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request).into_owned();
    Some(text.split_whitespace().nth(1)?.to_owned())
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Serves `answer(path)` (a JSON body) in mode OK, and the faults in the others.
async fn device(answer: impl Fn(&str) -> Value + Send + Sync + 'static) -> Device {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mode = Arc::new(AtomicU8::new(OK));
    let answer = Arc::new(answer);
    let shared = mode.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (mode, answer) = (shared.clone(), answer.clone());
            tokio::spawn(async move {
                let Some(path) = read_request(&mut stream).await else {
                    return;
                };
                match mode.load(Ordering::SeqCst) {
                    HANG => tokio::time::sleep(Duration::from_secs(60)).await,
                    ERROR_500 => {
                        respond(
                            &mut stream,
                            "500 Internal Server Error",
                            "text/plain",
                            "error",
                        )
                        .await
                    }
                    MALFORMED => {
                        respond(
                            &mut stream,
                            "200 OK",
                            "application/json",
                            "{\"switch:0\": {\"apower\"",
                        )
                        .await
                    }
                    CLOSE => drop(stream),
                    _ => {
                        let body = answer(&path).to_string();
                        respond(&mut stream, "200 OK", "application/json", &body).await
                    }
                }
            });
        }
    });
    Device { address, mode }
}

/// A Shelly Plus Plug S (Gen2), id `id`.
async fn shelly(id: String) -> Device {
    device(move |path| {
        if path.starts_with("/rpc/Shelly.GetDeviceInfo") {
            json!({"id": id, "gen": 2, "mac": "E868E7F1A2B3", "model": "SNPL-00112EU", "ver": "1.4.4"})
        } else {
            json!({"switch:0": {"id": 0, "apower": 42.5, "voltage": 230.1, "output": true,
                                "aenergy": {"total": 1234.5}, "temperature": {"tC": 41.0}}})
        }
    })
    .await
}

/// A HikVision camera (no auth) whose alert stream sends a heartbeat every 200 ms, or in mode
/// MALFORMED parts that are not XML, in mode SILENT nothing after its headers.
async fn camera(serial: &'static str) -> Device {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mode = Arc::new(AtomicU8::new(OK));
    let shared = mode.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let mode = shared.clone();
            tokio::spawn(async move {
                let Some(path) = read_request(&mut stream).await else {
                    return;
                };
                if path.starts_with("/ISAPI/System/deviceInfo") {
                    let xml = format!("<DeviceInfo xmlns=\"http://www.hikvision.com/ver20/XMLSchema\"><deviceName>Garage</deviceName><model>DS-2CD1023G0E-I</model><serialNumber>{serial}</serialNumber><macAddress>44:19:b6:00:00:01</macAddress></DeviceInfo>");
                    respond(&mut stream, "200 OK", "application/xml", &xml).await;
                    return;
                }
                match mode.load(Ordering::SeqCst) {
                    CLOSE => return,
                    ERROR_500 => {
                        respond(
                            &mut stream,
                            "500 Internal Server Error",
                            "text/plain",
                            "error",
                        )
                        .await;
                        return;
                    }
                    _ => {}
                }
                let head = "HTTP/1.1 200 OK\r\nContent-Type: multipart/mixed; boundary=boundary\r\nConnection: close\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    let body = match mode.load(Ordering::SeqCst) {
                        SILENT => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        }
                        MALFORMED => "<EventNotificationAlert><eventType>videoloss</eventType".to_owned(),
                        CLOSE => return,
                        _ => "<EventNotificationAlert xmlns=\"http://www.hikvision.com/ver20/XMLSchema\"><channelID>1</channelID><eventType>videoloss</eventType><eventState>inactive</eventState></EventNotificationAlert>".to_owned(),
                    };
                    let part = format!(
                        "--boundary\r\nContent-Type: application/xml; charset=\"UTF-8\"\r\nContent-Length: {}\r\n\r\n{body}\r\n",
                        body.len()
                    );
                    if stream.write_all(part.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
    });
    Device { address, mode }
}

async fn device_json(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/devices/{id}"), &app.viewer)
        .await
        .json()
        .await
        .unwrap()
}

async fn polls(app: &TestApp, source: &str, outcome: &str) -> f64 {
    let text = app.scrape().await;
    let series = format!("devicehub_polls_total{{source=\"{source}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_devices_are_counted_and_marked_offline_while_the_others_keep_their_cadence() {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let ids: Vec<String> = ["good", "hang", "error", "malformed", "close"]
        .iter()
        .map(|k| format!("shellyplugs-{k}-{tag}"))
        .collect();
    let mut shellys = Vec::new();
    for id in &ids {
        shellys.push(shelly(id.clone()).await);
    }
    let serial: &'static str = Box::leak(format!("CAM{tag}").into_boxed_str());
    let cam = camera(serial).await;
    let camera_id = format!("hikvision-cam{tag}");

    let mut settings = collector_settings();
    settings.roles.push(ProcessRole::Pollers);
    settings.shelly.hosts = shellys.iter().map(|s| s.address.clone()).collect();
    settings.shelly.interval_s = 1;
    settings.shelly.timeout_ms = 500;
    settings.shelly.failures_before_offline = 3;
    settings.hikvision.hosts = vec![cam.address.clone()];
    settings.hikvision.silence_s = 1;
    settings.hikvision.failures_before_offline = 3;
    let app = spawn_app_with(settings).await;

    // Every device answers first: identified, registered, polled, online.
    for id in ids.iter().chain([&camera_id]) {
        app.eventually(&format!("/api/devices/{id}"), 30, |d| {
            d["connection_status"] == "online"
        })
        .await;
    }
    // Then four Shelly devices and the camera fail, each its own way.
    for (device, mode) in shellys[1..].iter().zip([HANG, ERROR_500, MALFORMED, CLOSE]) {
        device.mode.store(mode, Ordering::SeqCst);
    }
    cam.mode.store(MALFORMED, Ordering::SeqCst);
    let good_before = readings(&app, &ids[0]).await;
    let started = std::time::Instant::now();
    for id in ids[1..].iter().chain([&camera_id]) {
        app.eventually(&format!("/api/devices/{id}"), 30, |d| {
            d["connection_status"] == "offline"
        })
        .await;
        let alerts: Value = app
            .get(&format!("/api/devices/{id}/alerts"), &app.viewer)
            .await
            .json()
            .await
            .unwrap();
        let offline: Vec<&Value> = alerts
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["alert_type"] == "offline")
            .collect();
        assert_eq!(offline.len(), 1, "{id}: {alerts}");
        assert!(
            offline[0]["message"].as_str().unwrap().contains("in a row"),
            "{id}: {alerts}"
        );
    }
    // The healthy one kept polling once a second all along.
    let seconds = started.elapsed().as_secs_f64();
    let good_after = readings(&app, &ids[0]).await;
    assert!(
        (good_after - good_before) as f64 >= (seconds - 2.0).max(1.0),
        "{} polls of the healthy Shelly in {seconds:.1} s",
        good_after - good_before
    );
    assert_eq!(
        device_json(&app, &ids[0]).await["connection_status"],
        "online"
    );
    for outcome in ["ok", "timeout", "status", "malformed", "connection"] {
        assert!(
            polls(&app, "shelly", outcome).await >= 1.0,
            "shelly {outcome}"
        );
    }
    assert!(polls(&app, "hikvision", "malformed").await >= 3.0);

    // A silent alert stream is reopened after silence_s, and counts as a timeout.
    cam.mode.store(SILENT, Ordering::SeqCst);
    let timeouts = polls(&app, "hikvision", "timeout").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(polls(&app, "hikvision", "timeout").await > timeouts);

    // Answering again brings a device back online.
    shellys[2].mode.store(OK, Ordering::SeqCst);
    cam.mode.store(OK, Ordering::SeqCst);
    for id in [&ids[2], &camera_id] {
        app.eventually(&format!("/api/devices/{id}"), 60, |d| {
            d["connection_status"] == "online"
        })
        .await;
    }
}

/// The healthy Shelly's `switch0.power` readings in the last minute.
async fn readings(app: &TestApp, id: &str) -> usize {
    let points: Value = app
        .get(
            &format!("/api/devices/{id}/metrics?start=-1m&metric=switch0.power"),
            &app.viewer,
        )
        .await
        .json()
        .await
        .unwrap();
    points.as_array().map_or(0, Vec::len)
}

/// A host that says it is a Shelly (any DHCP client can name itself `shelly...`) and asks for
/// basic auth never gets the password in the clear: only a device identified as Gen1 does.
#[tokio::test]
async fn the_shelly_password_goes_by_basic_auth_only_to_a_gen1_device() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                log.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&request).into_owned());
                let body = "401 Unauthorized";
                let response = format!(
                    "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"shelly\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    let mut settings = collector_settings().shelly;
    settings.password = Some(secrecy::SecretString::from("the-shared-shelly-password"));
    let host = devicehub::clients::shelly::ShellyClient::new(&settings)
        .unwrap()
        .host(&address);
    let refused = host.get("/rpc/Shelly.GetDeviceInfo").await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
    host.allow_basic();
    assert!(host.get("/status").await.is_err());
    let requests = seen.lock().unwrap().clone();
    assert_eq!(
        requests.len(),
        3,
        "not answered before it was allowed; answered once after"
    );
    for request in &requests[..2] {
        assert!(
            !request.to_lowercase().contains("authorization"),
            "{request}"
        );
    }
    assert!(
        requests[2].to_lowercase().contains("authorization: basic"),
        "{}",
        requests[2]
    );
}
