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
/// basic auth never gets the password in the clear, whatever it answers: only a host the
/// operator listed in `shelly.gen1_hosts` does.
#[tokio::test]
async fn the_shelly_password_goes_by_basic_auth_only_to_an_operator_listed_gen1_host() {
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
    let networks = std::sync::Arc::new(devicehub::clients::DeviceNetworks::of(vec!["127.0.0.0/8"
        .parse()
        .unwrap()]));
    let host = devicehub::clients::shelly::ShellyClient::new(&settings, networks.clone())
        .unwrap()
        .host(&address);
    let refused = host.get("/rpc/Shelly.GetDeviceInfo").await.unwrap_err();
    assert!(refused.to_string().contains("401"), "{refused}");
    assert!(
        host.get("/shelly").await.is_err(),
        "a Gen1-shaped claim changes nothing"
    );
    settings.gen1_hosts = vec![address.clone()];
    let listed = devicehub::clients::shelly::ShellyClient::new(&settings, networks)
        .unwrap()
        .host(&address);
    assert!(listed.get("/status").await.is_err());
    let requests = seen.lock().unwrap().clone();
    assert_eq!(
        requests.len(),
        4,
        "not answered before it was listed; answered once after"
    );
    for request in &requests[..3] {
        assert!(
            !request.to_lowercase().contains("authorization"),
            "{request}"
        );
    }
    assert!(
        requests[3].to_lowercase().contains("authorization: basic"),
        "{}",
        requests[3]
    );
}

/// A gzip member whose deflate stream is one zero and then `len / 258` copies of "the last 258
/// bytes again" (fixed Huffman, 13 bits each): `len` bytes of zeros in about `len / 160` bytes,
/// the shape of a decompression bomb. (Its CRC is left 0: a reader inflating it has spent the
/// memory long before the trailer.)
fn gzip_bomb(len: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, value: u64, n: u32) {
            self.acc |= value << self.n;
            self.n += n;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// A Huffman code goes most significant bit first.
        fn code(&mut self, code: u64, n: u32) {
            let reversed = (0..n).fold(0, |r, i| r | (((code >> i) & 1) << (n - 1 - i)));
            self.put(reversed, n);
        }
    }
    let mut bits = Bits {
        out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
        acc: 0,
        n: 0,
    };
    bits.put(1, 1); // the final block
    bits.put(1, 2); // fixed Huffman codes
    bits.code(0b0011_0000, 8); // literal 0
    for _ in 0..len / 258 {
        bits.code(0b1100_0101, 8); // length 258
        bits.code(0, 5); // distance 1
    }
    bits.code(0, 7); // end of block
    bits.put(0, 7);
    let mut out = bits.out;
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&((len / 258 * 258 + 1) as u32).to_le_bytes());
    out
}

/// A host on the LAN that answers every request with `head` and then `body`.
async fn rogue(head: String, body: Arc<Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (head, body) = (head.clone(), body.clone());
            tokio::spawn(async move {
                if read_request(&mut stream).await.is_some() {
                    let _ = stream.write_all(head.as_bytes()).await;
                    for chunk in body.chunks(64 * 1024) {
                        if stream.write_all(chunk).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    address
}

#[tokio::test]
async fn a_gzip_bomb_or_an_endless_answer_is_refused_unread_while_a_real_shelly_is_polled() {
    use crate::harness::{scratch, services, Service};
    let (tag, dir) = scratch();
    let good_id = format!("shellyplugs-good{}", &tag[..8]);
    let good = shelly(good_id.clone()).await;
    // 256 MiB of zeros in 1.7 MB, as gzip, to the very first identify request.
    let bomb = gzip_bomb(256 << 20);
    let bomb = rogue(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            bomb.len()
        ),
        Arc::new(bomb),
    )
    .await;
    // 64 MiB of JSON without a length: only the cap ends it.
    let mut endless = b"{\"id\": \"".to_vec();
    endless.resize(64 << 20, b'a');
    let endless = rogue(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n".into(),
        Arc::new(endless),
    )
    .await;

    let broker = services::mosquitto(&dir, &[]);
    let mut service = Service::new(&tag, broker.port, &dir);
    service.set("DEVICEHUB__ROLES", "api,collector,pollers");
    service.set(
        "DEVICEHUB__SHELLY__HOSTS",
        format!("{},{bomb},{endless}", good.address),
    );
    service.set("DEVICEHUB__SHELLY__INTERVAL_S", "1");
    service.start().await;
    let scrape = || async {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", service.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let too_large = |text: &str| {
        crate::harness::metric_sample(
            text,
            "devicehub_polls_total{source=\"shelly\",outcome=\"too_large\"}",
        )
        .unwrap_or(0.0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, device) = service
            .api(
                reqwest::Method::GET,
                &format!("/api/devices/{good_id}"),
                None,
            )
            .await;
        if status == 200
            && device["connection_status"] == "online"
            && too_large(&scrape().await) >= 6.0
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{status} {device}; too_large {}",
            too_large(&scrape().await)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(service.is_running());
    let peak = service.peak_rss_bytes();
    assert!(
        peak < 200 << 20,
        "the collector held {} MiB at its peak",
        peak >> 20
    );
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

/// A host that answers as a device devicehub already knows — a Shelly pinned to another MAC, a
/// sensor of another type — is refused with an `identity_conflict` alert: no reading goes under
/// that id and the device's record (its `http`, where commands go) is not touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_claiming_a_known_devices_identity_is_refused_with_an_alert() {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let relay = format!("shellyplus1pm-{tag}");
    let sensor = format!("sensor-{tag}");
    let genuine_http = "127.0.0.1:9";
    let claims_relay = {
        let relay = relay.clone();
        device(move |path| {
            if path.starts_with("/rpc/Shelly.GetDeviceInfo") {
                json!({"id": relay, "gen": 2, "mac": "0A0B0C0D0E0F", "model": "SNSW-001P16EU"})
            } else {
                json!({"switch:0": {"id": 0, "apower": 999.0, "output": true}})
            }
        })
        .await
    };
    let claims_sensor = {
        let sensor = sensor.clone();
        device(move |path| {
            if path.starts_with("/rpc/Shelly.GetDeviceInfo") {
                json!({"id": sensor, "gen": 2, "mac": "0A0B0C0D0E10", "model": "SNSW-001P16EU"})
            } else {
                json!({"switch:0": {"id": 0, "apower": 999.0, "output": true}})
            }
        })
        .await
    };
    // They answer only once the genuine devices are registered.
    claims_relay.mode.store(ERROR_500, Ordering::SeqCst);
    claims_sensor.mode.store(ERROR_500, Ordering::SeqCst);
    let mut settings = collector_settings();
    settings.roles.push(ProcessRole::Pollers);
    settings.shelly.hosts = vec![claims_relay.address.clone(), claims_sensor.address.clone()];
    settings.shelly.interval_s = 1;
    let app = spawn_app_with(settings).await;
    app.register_with(json!({
        "device_id": relay, "device_name": "relay", "device_type": "shelly",
        "metadata": {"mac": "E8:68:E7:F1:A2:B3", "generation": 2, "http": genuine_http, "polled": true},
    }))
    .await;
    app.register_with(
        json!({"device_id": sensor, "device_name": "sensor", "device_type": "sensor"}),
    )
    .await;
    claims_relay.mode.store(OK, Ordering::SeqCst);
    claims_sensor.mode.store(OK, Ordering::SeqCst);
    for id in [&relay, &sensor] {
        let alerts = app
            .eventually(&format!("/api/devices/{id}/alerts"), 30, |alerts| {
                alerts
                    .as_array()
                    .is_some_and(|a| a.iter().any(|a| a["alert_type"] == "identity_conflict"))
            })
            .await;
        let conflict = alerts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["alert_type"] == "identity_conflict")
            .unwrap()
            .clone();
        assert_eq!(conflict["severity"], "critical");
        assert!(
            conflict["message"].as_str().unwrap().contains("answers as"),
            "{conflict}"
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        readings(&app, &relay).await,
        0,
        "no reading under the claimed id"
    );
    let record = device_json(&app, &relay).await;
    assert_eq!(record["metadata"]["http"], genuine_http, "{record}");
    assert_eq!(record["metadata"]["mac"], "E8:68:E7:F1:A2:B3", "{record}");
    assert_eq!(device_json(&app, &sensor).await["device_type"], "sensor");
    // One alert per claim, not one per poll.
    let alerts: Value = app
        .get(&format!("/api/devices/{relay}/alerts"), &app.viewer)
        .await
        .json()
        .await
        .unwrap();
    let conflicts = alerts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["alert_type"] == "identity_conflict")
        .count();
    assert_eq!(conflicts, 1, "{alerts}");
}

/// A Plus Plug S (Gen2), id `id`, whose `Mqtt.GetConfig` says whether it publishes its status
/// (`pushes`), counting the status requests it answers.
async fn shelly_saying(
    id: String,
    pushes: bool,
    asked: Arc<std::sync::atomic::AtomicUsize>,
) -> Device {
    device(move |path| {
        if path.starts_with("/rpc/Shelly.GetDeviceInfo") {
            json!({"id": id, "gen": 2, "mac": "E868E7F1A2B3", "model": "SNPL-00112EU", "ver": "1.4.4"})
        } else if path.starts_with("/rpc/Mqtt.GetConfig") {
            // Shelly's documented answer, MQTT on or off.
            json!({"enable": pushes, "server": if pushes { json!("broker.lan:1883") } else { Value::Null },
                   "client_id": id, "user": null, "ssl_ca": null, "topic_prefix": id,
                   "rpc_ntf": true, "status_ntf": pushes, "use_client_cert": false,
                   "enable_rpc": true, "enable_control": true})
        } else {
            asked.fetch_add(1, Ordering::SeqCst);
            json!({"switch:0": {"id": 0, "apower": 42.5, "voltage": 230.1, "output": true,
                                "aenergy": {"total": 1234.5}, "temperature": {"tC": 41.0}}})
        }
    })
    .await
}

/// Push or poll is the device's word, asked when it is found: one whose MQTT is off has its
/// first reading within one interval (no watch of six intervals first); one that publishes its
/// status over MQTT is not polled at all, so nothing it says is stored twice.
#[tokio::test]
async fn a_shelly_is_polled_at_once_unless_it_says_it_pushes_over_mqtt() {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let (polled_id, pushing_id) = (
        format!("shellyplugs-poll-{tag}"),
        format!("shellyplugs-push-{tag}"),
    );
    let (polled_asked, pushing_asked) = (Arc::default(), Arc::default());
    let polled = shelly_saying(polled_id.clone(), false, Arc::clone(&polled_asked)).await;
    let pushing = shelly_saying(pushing_id.clone(), true, Arc::clone(&pushing_asked)).await;
    let mut settings = collector_settings();
    settings.roles.push(ProcessRole::Pollers);
    settings.shelly.hosts = vec![polled.address.clone(), pushing.address.clone()];
    // Long enough that six intervals would show: the old watch waited a minute here.
    settings.shelly.interval_s = 10;
    let started = std::time::Instant::now();
    let app = spawn_app_with(settings).await;
    app.eventually(&format!("/api/devices/{polled_id}"), 15, |d| {
        d["connection_status"] == "online"
    })
    .await;
    let first = started.elapsed();
    assert!(
        first < Duration::from_secs(12),
        "the first reading took {first:?}"
    );
    assert!(readings(&app, &polled_id).await >= 1);
    assert!(polled_asked.load(Ordering::SeqCst) >= 1);
    // Two intervals on, the pushing plug was never asked for its status.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(started.elapsed())).await;
    assert_eq!(
        pushing_asked.load(Ordering::SeqCst),
        0,
        "the pushing plug was polled"
    );
    assert_eq!(readings(&app, &pushing_id).await, 0);
}
