//! Each device profile against the real broker (Mosquitto on 127.0.0.1:1883, or
//! `DEVICEHUB_TEST_MQTT_URL`): what it publishes decodes with devicehub's own decoders, sequence
//! numbers and hello rules hold, commands are answered, and the Shelly and Mikrotik emulators
//! answer their HTTP APIs. Every test uses topic prefixes (or device ids) of its own.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use devicehub::domain::{CommandResult, Message};
use devicehub::wire::Decoder;
use devicehub_sim::profiles::esp32::{self, Esp32Config, Esp32Stats};
use devicehub_sim::profiles::house::{self, HouseConfig};
use devicehub_sim::profiles::meter::{self, MeterConfig};
use devicehub_sim::profiles::mikrotik::{self, Host};
use devicehub_sim::profiles::sensor::{self, SensorConfig};
use devicehub_sim::profiles::shelly;
use devicehub_sim::scenario::{MeterKind, MikrotikSection, ShellyDevice, ShellyModel};
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{json, Value};

fn broker() -> String {
    std::env::var("DEVICEHUB_TEST_MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into())
}

fn tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// What a watcher received: `(topic, payload)` in arrival order.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A test's own subscriber: everything on `filters`, as `(topic, payload)`.
struct Watcher {
    client: AsyncClient,
    seen: Received,
}

impl Watcher {
    async fn new(filters: &[String]) -> Self {
        let options =
            devicehub_sim::load::mqtt_options(&broker(), format!("sim-test-{}", tag())).unwrap();
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let seen: Received = Arc::default();
        let (subscribed_tx, mut subscribed) = tokio::sync::mpsc::channel(1);
        {
            let seen = seen.clone();
            let filters = filters.to_vec();
            let client = client.clone();
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            for f in &filters {
                                client.subscribe(f, QoS::AtLeastOnce).await.unwrap();
                            }
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            let _ = subscribed_tx.try_send(());
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            seen.lock()
                                .unwrap()
                                .push((p.topic.clone(), p.payload.to_vec()));
                        }
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            });
        }
        for _ in filters {
            subscribed.recv().await;
        }
        Self { client, seen }
    }

    fn messages(&self) -> Vec<(String, Vec<u8>)> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (up to `secs`) until `done` holds for what has arrived.
    async fn until(
        &self,
        secs: u64,
        done: impl Fn(&[(String, Vec<u8>)]) -> bool,
    ) -> Vec<(String, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let seen = self.messages();
            if done(&seen) {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not there after {secs} s; got: {:?}",
                seen.iter()
                    .map(|(t, p)| format!("{t} {}", String::from_utf8_lossy(p)))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn publish(&self, topic: &str, payload: Value) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_string())
            .await
            .unwrap();
    }
}

fn decoder(iot_prefix: &str, qs_prefix: &str) -> Decoder {
    Decoder {
        iot_prefix: iot_prefix.into(),
        qs_prefix: qs_prefix.into(),
        ..Decoder::default()
    }
}

/// Decodes what devices published (commands, which go the other way, are left out).
fn decode_all(decoder: &Decoder, messages: &[(String, Vec<u8>)]) -> Vec<Message> {
    messages
        .iter()
        .filter(|(topic, _)| !topic.ends_with("/command"))
        .map(|(topic, payload)| {
            decoder
                .decode(topic, payload, Utc::now())
                .unwrap_or_else(|r| {
                    panic!(
                        "{topic} {} was rejected: {r:?}",
                        String::from_utf8_lossy(payload)
                    )
                })
        })
        .collect()
}

fn meter_config(prefix: &str, id: &str, send_ms: u64, hello_ms: u64) -> MeterConfig {
    MeterConfig {
        device_id: id.into(),
        kind: MeterKind::Ac,
        sample_interval: Duration::from_millis(100),
        send_interval: Duration::from_millis(send_ms),
        hello_interval: Duration::from_millis(hello_ms),
        fw_version: "2.4.1".into(),
        loss_probability: 0.0,
        iot_prefix: prefix.into(),
        brokers: vec![broker()],
        seed: 7,
    }
}

#[tokio::test]
async fn a_meter_sends_decodable_datagrams_with_consecutive_seq_and_hellos_only_when_needed() {
    let prefix = format!("t{}/iot", tag());
    let watcher = Watcher::new(&[format!("{prefix}/#")]).await;
    // Frequent telemetry: one hello at power-on, no periodic ones.
    let frequent = tokio::spawn(meter::run(meter_config(&prefix, "ac-1", 300, 60_000)));
    // Telemetry rarer than the hello interval: periodic hellos.
    let rare = tokio::spawn(meter::run(meter_config(&prefix, "ac-2", 2_000, 300)));
    let seen = watcher
        .until(10, |m| {
            m.iter()
                .filter(|(t, _)| t.ends_with("ac-1/telemetry"))
                .count()
                >= 6
                && m.iter().filter(|(t, _)| t.ends_with("ac-2/hello")).count() >= 4
        })
        .await;
    frequent.abort();
    rare.abort();
    let decoder = decoder(&prefix, "qs/v1");
    let messages = decode_all(&decoder, &seen);

    let of = |device: &str| -> Vec<&Message> {
        messages
            .iter()
            .filter(|m| m.device_id().is_some_and(|d| d.as_str() == device))
            .collect()
    };
    let ac1 = of("ac-1");
    assert!(
        matches!(ac1[0], Message::Status { online: true, .. }),
        "the retained online status comes first: {:?}",
        ac1[0]
    );
    let hellos: Vec<_> = ac1
        .iter()
        .filter_map(|m| match m {
            Message::Hello {
                fw_version, seq, ..
            } => Some((fw_version.clone(), *seq)),
            _ => None,
        })
        .collect();
    assert_eq!(
        hellos,
        [("2.4.1".to_owned(), Some(1))],
        "one hello, at power-on"
    );
    let seqs: Vec<u64> = ac1.iter().filter_map(|m| m.seq()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "consecutive from 1"
    );
    for m in &ac1 {
        if let Message::Telemetry { readings, .. } = m {
            let metrics: std::collections::BTreeSet<&str> =
                readings.iter().map(|r| r.metric.as_str()).collect();
            assert_eq!(
                metrics,
                [
                    "current_ac",
                    "energy",
                    "frequency",
                    "power_factor",
                    "voltage_ac"
                ]
                .into(),
            );
            for r in readings
                .iter()
                .filter(|r| r.metric.as_str() == "voltage_ac")
            {
                assert!((20_000.0..30_000.0).contains(&r.value), "{}", r.value);
            }
        }
    }
    let ac2_hellos = of("ac-2")
        .iter()
        .filter(|m| matches!(m, Message::Hello { .. }))
        .count();
    assert!(ac2_hellos >= 4, "periodic hellos: {ac2_hellos}");
}

#[tokio::test]
async fn a_meter_answers_every_command_and_comes_back_from_ota_with_the_new_firmware() {
    let prefix = format!("t{}/iot", tag());
    let watcher = Watcher::new(&[format!("{prefix}/m-1/#")]).await;
    let device = tokio::spawn(meter::run(meter_config(&prefix, "m-1", 500, 60_000)));
    watcher
        .until(10, |m| m.iter().any(|(t, _)| t.ends_with("/hello")))
        .await;
    let command = |cmd_id: &str, cmd: &str, params: Value| json!({"v": 2, "cmd_id": cmd_id, "ts": Utc::now().to_rfc3339(), "cmd": cmd, "params": params});
    let topic = format!("{prefix}/m-1/command");
    let cmds = [
        (
            "00000000-0000-4000-8000-000000000001",
            "update_config",
            json!({"send_interval_s": 1}),
        ),
        (
            "00000000-0000-4000-8000-000000000002",
            "update_config",
            json!({"send_interval_s": -5}),
        ),
        (
            "00000000-0000-4000-8000-000000000003",
            "request_status",
            json!({}),
        ),
        (
            "00000000-0000-4000-8000-000000000004",
            "self_destruct",
            json!({}),
        ),
    ];
    for (id, cmd, params) in &cmds {
        watcher
            .publish(&topic, command(id, cmd, params.clone()))
            .await;
    }
    let decoder = decoder(&prefix, "qs/v1");
    let acks = |seen: &[(String, Vec<u8>)]| -> Vec<(String, CommandResult)> {
        decode_all(&decoder, seen)
            .into_iter()
            .filter_map(|m| match m {
                Message::CommandAck { cmd_id, result, .. } => Some((cmd_id.to_string(), result)),
                _ => None,
            })
            .collect()
    };
    let seen = watcher.until(10, |m| acks(m).len() >= 4).await;
    let got = acks(&seen);
    let result_of = |id: &str| got.iter().find(|(c, _)| c == id).map(|(_, r)| *r);
    assert_eq!(result_of(cmds[0].0), Some(CommandResult::Accepted));
    assert_eq!(result_of(cmds[1].0), Some(CommandResult::Rejected));
    assert_eq!(result_of(cmds[2].0), Some(CommandResult::Accepted));
    assert_eq!(result_of(cmds[3].0), Some(CommandResult::Unsupported));
    let hellos = decode_all(&decoder, &seen)
        .iter()
        .filter(|m| matches!(m, Message::Hello { .. }))
        .count();
    assert_eq!(hellos, 2, "request_status triggers a hello");

    let ota = "00000000-0000-4000-8000-000000000005";
    watcher
        .publish(
            &topic,
            command(ota, "start_ota", json!({"version": "3.0.0"})),
        )
        .await;
    let seen = watcher
        .until(15, |m| {
            decode_all(&decoder, m)
                .iter()
                .any(|x| matches!(x, Message::Hello { fw_version, .. } if fw_version == "3.0.0"))
        })
        .await;
    device.abort();
    let messages = decode_all(&decoder, &seen);
    let states: Vec<String> = messages
        .iter()
        .filter_map(|m| match m {
            Message::OtaStatus { state, .. } => Some(state.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(states.first().map(String::as_str), Some("downloading"));
    assert_eq!(states.last().map(String::as_str), Some("rebooting"));
    assert!(
        messages
            .iter()
            .any(|m| matches!(m, Message::Status { online: false, .. })),
        "offline before the reboot"
    );
    let new_hello = messages
        .iter()
        .find_map(|m| match m {
            Message::Hello {
                fw_version, seq, ..
            } if fw_version == "3.0.0" => Some(*seq),
            _ => None,
        })
        .unwrap();
    assert_eq!(new_hello, Some(1), "seq restarts at power-on");
}

#[tokio::test]
async fn v1_sensors_and_catalog_devices_publish_flat_telemetry_devicehub_decodes() {
    let prefix = format!("t{}/iot", tag());
    let watcher = Watcher::new(&[format!("{prefix}/#")]).await;
    let sensor = tokio::spawn(sensor::run(SensorConfig {
        device_id: "sensor-1".into(),
        interval: Duration::from_millis(200),
        iot_prefix: prefix.clone(),
        brokers: vec![broker()],
        seed: 1,
    }));
    let catalog = house::load_catalog(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/simulator/device_catalog.csv"
    )))
    .unwrap();
    assert!(catalog.len() >= 5);
    let entry = catalog
        .iter()
        .find(|e| e.device_type == "thermostat")
        .unwrap()
        .clone();
    let (alerts_tx, mut alerts) = tokio::sync::mpsc::unbounded_channel();
    let thermostat = tokio::spawn(house::run(HouseConfig {
        entry: entry.clone(),
        interval: Duration::from_millis(200),
        alert_probability: 0.5,
        iot_prefix: prefix.clone(),
        brokers: vec![broker()],
        seed: 1,
        alerts: Some(alerts_tx),
    }));
    let seen = watcher
        .until(10, |m| {
            m.iter().filter(|(t, _)| t.contains("sensor-1")).count() >= 3
                && m.iter()
                    .filter(|(t, _)| t.contains(&entry.device_id))
                    .count()
                    >= 3
        })
        .await;
    sensor.abort();
    thermostat.abort();
    let decoder = decoder(&prefix, "qs/v1");
    for message in decode_all(&decoder, &seen) {
        let Message::Telemetry {
            device_id,
            seq,
            readings,
        } = message
        else {
            panic!("telemetry only: {message:?}");
        };
        assert_eq!(seq, None, "v1 has no seq");
        let metrics: std::collections::BTreeSet<&str> =
            readings.iter().map(|r| r.metric.as_str()).collect();
        if device_id.as_str() == "sensor-1" {
            assert_eq!(metrics, ["humidity", "temperature"].into());
        } else {
            assert_eq!(
                metrics,
                ["energy_consumption_wh", "power_usage", "temperature"].into()
            );
        }
    }
    // The seed 002 record keeps its strings (status, alert, location) for the archive.
    let (_, raw) = seen
        .iter()
        .find(|(t, _)| t.contains(&entry.device_id))
        .unwrap();
    let raw: Value = serde_json::from_slice(raw).unwrap();
    assert_eq!(raw["location"], entry.location.as_str());
    assert_eq!(raw["device_type"], "thermostat");
    let alert = alerts.recv().await.expect("alerts at 50% per message");
    assert_eq!(alert.device_id, entry.device_id);
}

fn esp32_config(qs_prefix: &str, id: &str) -> Esp32Config {
    Esp32Config {
        device_id: id.into(),
        interval: Duration::from_millis(300),
        ack_timeout: Duration::from_secs(1),
        max_retries: 3,
        qs_prefix: qs_prefix.into(),
        brokers: vec![broker()],
        seed: 3,
        fw_version: "1.8.2".into(),
    }
}

#[tokio::test]
async fn esp32_devices_retry_events_until_acknowledged() {
    let qs = format!("t{}/qs/v1", tag());
    let watcher = Watcher::new(&[format!("{qs}/+/events")]).await;
    // Nobody acknowledges esp-a: it sends its events again with the same event_id.
    let unacked = Arc::new(Esp32Stats::default());
    let a = tokio::spawn(esp32::run(esp32_config(&qs, "esp-a"), unacked.clone()));
    // esp-b gets an ACK for everything it sends (as devicehub's collector would give).
    let acked = Arc::new(Esp32Stats::default());
    let b = tokio::spawn(esp32::run(esp32_config(&qs, "esp-b"), acked.clone()));
    let decoder = decoder("iot", &qs);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    let mut answered = 0;
    while tokio::time::Instant::now() < deadline {
        let messages = watcher.messages();
        for (topic, payload) in messages.iter().skip(answered) {
            if topic.contains("esp-b") {
                let event: Value = serde_json::from_slice(payload).unwrap();
                watcher
                    .publish(
                        &format!("{qs}/esp-b/acks"),
                        json!({"schema": 1, "event_id": event["event_id"], "device_id": "esp-b", "status": "stored"}),
                    )
                    .await;
            }
        }
        answered = messages.len();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.abort();
    b.abort();
    let seen = watcher.messages();
    let mut events = 0;
    for message in decode_all(&decoder, &seen) {
        let Message::Events { events: list, .. } = message else {
            panic!("events only: {message:?}");
        };
        for e in list {
            let e = e.expect("every event is valid");
            assert_eq!(e.schema, 1);
            events += 1;
        }
    }
    assert!(events >= 10, "{events} events");
    assert!(
        unacked.retried.load(Ordering::Relaxed) >= 3,
        "esp-a retries"
    );
    let ids_a: Vec<String> = seen
        .iter()
        .filter(|(t, _)| t.contains("esp-a"))
        .map(|(_, p)| {
            serde_json::from_slice::<Value>(p).unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let distinct: std::collections::BTreeSet<&String> = ids_a.iter().collect();
    assert!(distinct.len() < ids_a.len(), "a retry repeats the event_id");
    assert!(acked.acked.load(Ordering::Relaxed) >= 5);
    assert_eq!(
        acked.retried.load(Ordering::Relaxed),
        0,
        "acknowledged events are not resent"
    );
}

async fn get_json(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

fn free_loopback() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn a_shelly_answers_rpc_over_http_and_notifies_over_mqtt() {
    let id = format!("shellypro4pm-{}", tag());
    let http = free_loopback();
    let watcher = Watcher::new(&[format!("{id}/#")]).await;
    let device = ShellyDevice {
        id: id.clone(),
        model: ShellyModel::Pro4pm,
        http,
        interval_s: 1,
        loads: vec!["heat pump".into(), "lights".into()],
        location: Some("utility_room".into()),
        password: None,
        mqtt: true,
    };
    let task = tokio::spawn(shelly::run(device, vec![broker()], 5));
    let client = reqwest::Client::new();
    let base = format!("http://{http}");
    let mut status = Value::Null;
    for _ in 0..100 {
        if let Ok(r) = client
            .get(format!("{base}/rpc/Shelly.GetStatus"))
            .send()
            .await
        {
            status = r.json().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..4 {
        let switch = &status[format!("switch:{i}")];
        assert_eq!(switch["id"], i);
        assert!(switch["apower"].is_number() && switch["voltage"].is_number());
        assert!(switch["aenergy"]["total"].is_number());
        assert!(switch["temperature"]["tC"].is_number());
        assert_eq!(switch["output"], true);
    }
    assert!(status.get("switch:4").is_none());
    let info = get_json(&client, format!("{base}/rpc/Shelly.GetDeviceInfo")).await;
    assert_eq!(info["id"], id.as_str());
    assert_eq!(info["gen"], 2);
    let set = get_json(&client, format!("{base}/rpc/Switch.Set?id=1&on=false")).await;
    assert_eq!(set["was_on"], true);
    let rpc: Value = client
        .post(format!("{base}/rpc"))
        .json(&json!({"id": 7, "method": "Switch.GetStatus", "params": {"id": 1}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rpc["id"], 7);
    assert_eq!(rpc["result"]["output"], false);
    assert_eq!(rpc["result"]["apower"], 0.0);
    let missing = client
        .get(format!("{base}/rpc/Switch.GetStatus?id=9"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let unknown = client
        .get(format!("{base}/rpc/Nope.Nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let seen = watcher
        .until(10, |m| m.iter().any(|(t, _)| t.ends_with("/events/rpc")))
        .await;
    task.abort();
    let decoder = decoder("iot", "qs/v1");
    let notifications: Vec<(String, Vec<u8>)> = seen
        .iter()
        .filter(|(t, _)| t.contains("/status/switch:") || t.ends_with("/events/rpc"))
        .cloned()
        .collect();
    for message in decode_all(&decoder, &notifications) {
        let Message::Shelly {
            device_id,
            readings,
        } = message
        else {
            panic!("Shelly readings: {message:?}");
        };
        assert_eq!(device_id.as_str(), id);
        assert!(readings
            .iter()
            .any(|r| r.metric.as_str().ends_with(".power")));
        assert!(readings
            .iter()
            .any(|r| r.metric.as_str().ends_with(".energy")));
    }
    assert!(seen
        .iter()
        .any(|(t, p)| t == &format!("{id}/online") && p == b"true"));
}

#[tokio::test]
async fn the_mikrotik_emulator_serves_leases_and_wifi_stations_with_basic_auth() {
    let addr = free_loopback();
    let section = MikrotikSection {
        http: addr,
        username: "admin".into(),
        password: Some("secret".into()),
        password_env: None,
        extra_hosts: vec![],
        wifi_hosts: vec!["pixel-8".into()],
        tls_cert: None,
    };
    let hosts = vec![
        Host {
            host_name: "shellypro4pm-a8032ab1c2d4".into(),
            mac: "A8:03:2A:B1:C2:D4".into(),
            address: "127.0.1.10".into(),
        },
        Host {
            host_name: "pixel-8".into(),
            mac: mikrotik::mac_for("pixel-8"),
            address: "192.168.88.30".into(),
        },
    ];
    let server = mikrotik::serve(&section, hosts).unwrap();
    let handle = server.handle();
    tokio::spawn(server);
    let url = format!("http://{addr}/rest/ip/dhcp-server/lease");
    let client = reqwest::Client::new();
    let denied = client
        .get(&url)
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let body: Value = denied.json().await.unwrap();
    assert_eq!(body["error"], 401);
    assert_eq!(client.get(&url).send().await.unwrap().status(), 401);
    let leases: Value = client
        .get(&url)
        .basic_auth("admin", Some("secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let leases = leases.as_array().unwrap();
    assert_eq!(leases.len(), 2);
    assert_eq!(leases[0]["host-name"], "shellypro4pm-a8032ab1c2d4");
    assert_eq!(leases[0]["mac-address"], "A8:03:2A:B1:C2:D4");
    assert_eq!(leases[0]["address"], "127.0.1.10");
    assert_eq!(leases[0]["status"], "bound");
    assert_eq!(
        leases[0]["dynamic"], "true",
        "RouterOS gives every value as a string"
    );
    let mac = leases[1]["mac-address"].as_str().unwrap();
    assert_eq!(mac.len(), 17);
    // devicehub's own reading of RouterOS's answers.
    let typed = devicehub::clients::routeros::leases(&Value::Array(leases.clone())).unwrap();
    assert_eq!(typed.len(), 2);
    assert!(typed[0].dynamic && typed[0].last_seen.is_some() && typed[0].expires_after.is_some());
    let table: Value = client
        .get(format!(
            "http://{addr}/rest/interface/wifi/registration-table"
        ))
        .basic_auth("admin", Some("secret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stations = devicehub::clients::routeros::stations(&table).unwrap();
    assert_eq!(stations.len(), 1, "{table}");
    assert_eq!(stations[0].mac.to_string(), mikrotik::mac_for("pixel-8"));
    assert!(stations[0].signal.is_some_and(|s| s < 0));
    assert_eq!(
        client
            .get(format!("http://{addr}/rest/nothing"))
            .basic_auth("admin", Some("secret"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    handle.stop(false).await;
}

#[tokio::test]
async fn a_meter_with_two_brokers_publishes_every_datagram_to_both() {
    let prefix = format!("t{}/iot", tag());
    let watcher = Watcher::new(&[format!("{prefix}/+/telemetry")]).await;
    let mut config = meter_config(&prefix, "dual-1", 300, 60_000);
    // Two connections (client ids `...-b0`, `...-b1`); here both reach the one test broker.
    config.brokers = vec![broker(), broker()];
    let task = tokio::spawn(meter::run(config));
    let seen = watcher.until(10, |m| m.len() >= 8).await;
    task.abort();
    let decoder = decoder(&prefix, "qs/v1");
    let mut seqs: Vec<u64> = decode_all(&decoder, &seen)
        .iter()
        .filter_map(Message::seq)
        .collect();
    seqs.sort_unstable();
    let complete = seqs.len() - seqs.len() % 2;
    for pair in seqs[..complete].chunks(2) {
        assert_eq!(pair[0], pair[1], "each seq twice: {seqs:?}");
    }
}

#[tokio::test]
async fn a_meter_that_dies_is_reported_offline_by_its_last_will() {
    let prefix = format!("t{}/iot", tag());
    let dir = std::env::temp_dir().join(format!("sim-lwt-{}", tag()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("one-meter.toml");
    std::fs::write(
        &scenario,
        format!(
            "[mqtt]\nbrokers = [\"{}\"]\niot_prefix = \"{prefix}\"\nqs_prefix = \"qs/v1\"\n\
             [[meters]]\nprefix = \"lwt\"\ncount = 1\nkind = \"dc\"\nsend_interval_s = 1\n",
            broker()
        ),
    )
    .unwrap();
    let watcher = Watcher::new(&[format!("{prefix}/lwt-001/status")]).await;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_devicehub-sim"))
        .args(["run", "--scenario"])
        .arg(&scenario)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let decoder = decoder(&prefix, "qs/v1");
    let statuses = |seen: &[(String, Vec<u8>)]| -> Vec<bool> {
        decode_all(&decoder, seen)
            .into_iter()
            .filter_map(|m| match m {
                Message::Status { online, .. } => Some(online),
                _ => None,
            })
            .collect()
    };
    watcher.until(10, |m| statuses(m).contains(&true)).await;
    // SIGKILL: no DISCONNECT, so the broker publishes the device's last will.
    child.kill().unwrap();
    child.wait().unwrap();
    let seen = watcher
        .until(10, |m| statuses(m).last() == Some(&false))
        .await;
    assert_eq!(statuses(&seen).first(), Some(&true));
    let _ = std::fs::remove_dir_all(dir);
}

/// The emulator as a router out of the box: HTTPS with a self-signed certificate, which
/// devicehub refuses until it is given the certificate as `mikrotik.ca_file`.
#[tokio::test]
async fn the_mikrotik_emulator_serves_https_with_a_self_signed_certificate_devicehub_must_be_told_to_trust(
) {
    let addr = free_loopback();
    let dir = std::env::temp_dir().join(format!("sim-tls-{}", uuid::Uuid::new_v4().simple()));
    let cert = dir.join("router.pem");
    let section = MikrotikSection {
        http: addr,
        username: "admin".into(),
        password: Some("secret".into()),
        password_env: None,
        extra_hosts: vec!["pixel-8".into()],
        wifi_hosts: vec![],
        tls_cert: Some(cert.clone()),
    };
    let hosts = vec![Host {
        host_name: "pixel-8".into(),
        mac: mikrotik::mac_for("pixel-8"),
        address: "192.168.88.30".into(),
    }];
    let server = mikrotik::serve(&section, hosts).unwrap();
    let handle = server.handle();
    tokio::spawn(server);
    assert!(cert.exists() && mikrotik::key_path(&cert).exists());
    let pem = std::fs::read_to_string(&cert).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    // Made once: a second start keeps it (devicehub keeps trusting it).
    assert!(!mikrotik::ensure_certificate(&cert, &addr.ip().to_string()).unwrap());

    let url = format!("https://{addr}/rest");
    let mut settings = devicehub::configuration::Settings::load(None)
        .unwrap()
        .mikrotik;
    settings.password = Some(secrecy::SecretString::from("secret"));
    let refused = devicehub::clients::mikrotik::MikrotikClient::new(&settings, &url)
        .unwrap()
        .leases()
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
    settings.ca_file = Some(cert.clone());
    let leases = devicehub::clients::mikrotik::MikrotikClient::new(&settings, &url)
        .unwrap()
        .leases()
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].host_name.as_deref(), Some("pixel-8"));
    handle.stop(true).await;
    let _ = std::fs::remove_dir_all(dir);
}

/// `scripts/run.sh` gives devicehub `config/simulator/device_metadata.csv`: every row is a host
/// the home scenario's router leases (a MAC that drifted would make a known device unknown), and
/// every host it leases has a row (the simulator's own devices raise no `unknown_device`).
#[test]
fn the_home_scenarios_metadata_file_names_exactly_the_hosts_of_the_home_scenario() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let scenario =
        devicehub_sim::scenario::Scenario::load(&root.join("config/simulator/home.toml")).unwrap();
    let hosts = devicehub_sim::run::inventory(&scenario).unwrap().hosts;
    let metadata = devicehub::inventory::MetadataFile::load(
        &root.join("config/simulator/device_metadata.csv"),
    )
    .unwrap()
    .current();
    assert!(metadata.len() >= 5);
    for entry in metadata.iter() {
        let host = hosts
            .iter()
            .find(|h| devicehub::domain::Mac::parse(&h.mac) == Some(entry.mac));
        assert!(host.is_some(), "{} is not a host of home.toml", entry.mac);
        if entry.device_type == "shelly" {
            assert!(host.unwrap().host_name.starts_with("shelly"), "{entry:?}");
        }
    }
    for host in &hosts {
        let mac = devicehub::domain::Mac::parse(&host.mac).unwrap();
        assert!(
            metadata.get(&mac).is_some(),
            "{} ({}) has no row in device_metadata.csv: it would raise unknown_device",
            host.host_name,
            host.mac
        );
    }
}
