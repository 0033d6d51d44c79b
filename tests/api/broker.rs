//! The broker as devicehub ships it (`config/mosquitto/`): it keeps what devicehub's session
//! was sent while devicehub was away, lets a device publish only as itself, and speaks TLS with
//! devicehub's custom CA and client certificate settings.

use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::Method;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde_json::{json, Value};

use crate::harness::services as servers;
use crate::harness::{scratch, Service};

fn datagram(device: &str, seq: u64) -> String {
    let ts = (Utc::now() - chrono::Duration::hours(1) + chrono::Duration::milliseconds(seq as i64))
        .to_rfc3339();
    json!({"v": 2, "device_id": device, "ts": ts, "seq": seq, "msg_type": "telemetry",
           "measurements": [{"ts": ts, "type": "power", "val": seq as f64, "unit": "W"}]})
    .to_string()
}

/// Every device of `devices` publishes `per_device` datagrams (`seq` 1..) at QoS 1, all at once,
/// each logged in as itself; returns when the broker has acknowledged every one.
async fn publish_fleet(port: u16, devices: &[String], per_device: u64) {
    let mut tasks = Vec::new();
    for device in devices {
        let device = device.clone();
        tasks.push(tokio::spawn(async move {
            let mut options = servers::device_options(port, &device, format!("fleet-{device}"));
            options
                .set_keep_alive(Duration::from_secs(30))
                .set_inflight(100);
            let (client, mut eventloop) = AsyncClient::new(options, 1000);
            let publisher = {
                let device = device.clone();
                tokio::spawn(async move {
                    for seq in 1..=per_device {
                        client
                            .publish(
                                format!("iot/{device}/telemetry"),
                                QoS::AtLeastOnce,
                                false,
                                datagram(&device, seq),
                            )
                            .await
                            .unwrap();
                    }
                    client
                })
            };
            let mut acked = 0;
            while acked < per_device {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                    Ok(_) => {}
                    Err(e) => panic!("{device}: {e}"),
                }
            }
            publisher.await.unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Points in the test's InfluxDB database, all devices together.
async fn all_points(service: &Service) -> u64 {
    service
        .influx()
        .query("SELECT count(\"value\") FROM \"iot_telemetry\"")
        .await
        .unwrap_or_default()
        .first()
        .and_then(|s| s.values.first())
        .and_then(|row| row.get(1))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Waits until devicehub has journaled `expected` messages and InfluxDB holds as many points.
async fn assert_all_arrive(service: &mut Service, expected: u64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let accepted = service.ingest_stats().await["messages_accepted"]
            .as_u64()
            .unwrap_or(0);
        let points = all_points(service).await;
        assert!(
            accepted <= expected && points <= expected,
            "{accepted} {points}"
        );
        if accepted == expected && points == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "after {secs} s: {accepted} journaled, {points} points in InfluxDB, of {expected}"
        );
        assert!(service.is_running(), "devicehub exited");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn fleet(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{prefix}-{i:03}")).collect()
}

#[tokio::test]
async fn the_shipped_broker_keeps_50000_messages_of_200_devices_while_devicehub_is_stopped() {
    let (tag, dir) = scratch();
    let devices = fleet("queued", 200);
    let users: Vec<&str> = devices.iter().map(String::as_str).collect();
    let broker = servers::mosquitto(&dir, &users);
    let mut service = Service::new(&tag, broker.port, &dir);
    // The first start makes devicehub's persistent session and its subscriptions.
    service.start().await;
    let (status, _) = service.terminate();
    assert!(status.success());

    publish_fleet(broker.port, &devices, 250).await;
    service.start().await;
    assert_all_arrive(&mut service, 50_000, 180).await;
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_burst_of_100000_messages_from_500_devices_arrives_whole() {
    let (tag, dir) = scratch();
    let devices = fleet("burst", 500);
    let users: Vec<&str> = devices.iter().map(String::as_str).collect();
    let broker = servers::mosquitto(&dir, &users);
    let mut service = Service::new(&tag, broker.port, &dir);
    service.start().await;
    publish_fleet(broker.port, &devices, 200).await;
    assert_all_arrive(&mut service, 100_000, 300).await;
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

/// Two collectors in one shared-subscription group (as deploy/k8s runs them) split the stream
/// through the shipped broker and its ACLs: every message is stored once, both take a share, and
/// neither mistakes the other's share for missing messages.
#[tokio::test]
async fn two_collectors_in_a_shared_group_split_the_stream_and_store_each_message_once() {
    let (tag, dir) = scratch();
    let devices = fleet("shared", 20);
    let users: Vec<&str> = devices.iter().map(String::as_str).collect();
    let broker = servers::mosquitto(&dir, &users);
    let mut services = Vec::new();
    for replica in 0..2 {
        let replica_dir = dir.join(format!("replica-{replica}"));
        let mut service = Service::new(&tag, broker.port, &replica_dir);
        service.set("DEVICEHUB__MQTT__SHARED_GROUP", "devicehub");
        service.set(
            "DEVICEHUB__MQTT__CLIENT_ID",
            format!("devicehub-{tag}-{replica}"),
        );
        // One after the other: the first creates and migrates the shared database.
        service.start().await;
        services.push(service);
    }
    publish_fleet(broker.port, &devices, 100).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let accepted = loop {
        let points = all_points(&services[0]).await;
        let mut accepted = Vec::new();
        for service in &services {
            let stats = service.ingest_stats().await;
            accepted.push(stats["messages_accepted"].as_u64().unwrap_or(0));
        }
        let total: u64 = accepted.iter().sum();
        assert!(total <= 2_000 && points <= 2_000, "{accepted:?} {points}");
        if total == 2_000 && points == 2_000 {
            break accepted;
        }
        assert!(
            Instant::now() < deadline,
            "journaled {accepted:?}, {points} points of 2,000"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        accepted.iter().all(|&a| a > 0),
        "a share each: {accepted:?}"
    );
    // The registry sinks (a second's batches) have written everything too.
    for service in &services {
        let lag = r#"devicehub_sink_lag_records{sink="registry"} 0"#;
        let url = format!("http://127.0.0.1:{}/metrics", service.http);
        for attempt in 0.. {
            let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
            if text.lines().any(|l| l == lag) {
                break;
            }
            assert!(attempt < 100, "the registry sink never caught up:\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let pool = sqlx::PgPool::connect(&services[0].database_url())
        .await
        .unwrap();
    let gaps: i64 =
        sqlx::query_scalar("SELECT count(*) FROM alerts WHERE alert_type = 'sequence_gap'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(gaps, 0);
    let registered: i64 = sqlx::query_scalar("SELECT count(*) FROM devices")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(registered, 20);
    drop(services);
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

/// Connects and returns the broker's verdict: `Ok` once connected, the error otherwise.
async fn connect(
    options: rumqttc::MqttOptions,
) -> Result<(AsyncClient, rumqttc::EventLoop), String> {
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok((client, eventloop)),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Subscribes at QoS 1 and waits for the broker's answer (Mosquitto grants a subscription its
/// ACL does not allow reading, and then delivers nothing on it).
async fn subscribe(client: &AsyncClient, eventloop: &mut rumqttc::EventLoop, topic: &str) {
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = eventloop.poll().await.unwrap() {
            return;
        }
    }
}

/// Publishes at QoS 1 and waits for the broker's acknowledgement.
async fn publish_acked(
    client: &AsyncClient,
    eventloop: &mut rumqttc::EventLoop,
    topic: &str,
    payload: String,
) {
    client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .unwrap();
    loop {
        if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
            return;
        }
    }
}

#[tokio::test]
async fn the_shipped_broker_lets_a_device_publish_and_read_only_as_itself() {
    let (tag, dir) = scratch();
    let broker = servers::mosquitto(&dir, &["acl-a", "acl-b"]);
    let mut service = Service::new(&tag, broker.port, &dir);
    service.start().await;

    // No anonymous clients, no wrong passwords.
    let anonymous = rumqttc::MqttOptions::new("anonymous", "127.0.0.1", broker.port);
    let refused = connect(anonymous).await.err().expect("anonymous refused");
    assert!(refused.contains("NotAuthorized"), "{refused}");
    let mut wrong = rumqttc::MqttOptions::new("wrong", "127.0.0.1", broker.port);
    wrong.set_credentials("acl-a", "not-the-password");
    assert!(connect(wrong).await.is_err());

    // Device b listens on a's command topic; a on its own.
    let options = servers::device_options(broker.port, "acl-b", "acl-b".into());
    let (b, mut b_loop) = connect(options).await.unwrap();
    subscribe(&b, &mut b_loop, "iot/acl-a/command").await;
    let options = servers::device_options(broker.port, "acl-a", "acl-a".into());
    let (a, mut a_loop) = connect(options).await.unwrap();
    subscribe(&a, &mut a_loop, "iot/acl-a/command").await;

    // a publishes as b (telemetry, status, a qs/v1 event), then as itself, each on a connection
    // of its own: Mosquitto 2.0.11 (Debian 12) drops an MQTT 3.1.1 client right after refusing
    // its QoS 1 publish; newer ones acknowledge it and discard it.
    let offline = json!({"v": 2, "device_id": "acl-b", "status": "offline"}).to_string();
    let event = json!({"schema": 1, "event_id": "e-1", "device_id": "acl-b", "event_type": "door"});
    for (i, (topic, payload)) in [
        ("iot/acl-b/telemetry", datagram("acl-b", 1)),
        ("iot/acl-b/status", offline),
        ("qs/v1/acl-b/events", event.to_string()),
        ("iot/acl-a/telemetry", datagram("acl-a", 1)),
    ]
    .into_iter()
    .enumerate()
    {
        let options = servers::device_options(broker.port, "acl-a", format!("acl-a-{i}"));
        let (client, mut eventloop) = connect(options).await.unwrap();
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => break,
                Ok(_) => {}
                Err(e) => {
                    assert!(
                        topic.starts_with("iot/acl-b") || topic.starts_with("qs/v1/acl-b"),
                        "{topic}: {e}"
                    );
                    break;
                }
            }
        }
    }

    // devicehub has the legitimate message, and nothing of the spoofed ones.
    let deadline = Instant::now() + Duration::from_secs(20);
    while service.api(Method::GET, "/api/devices/acl-a", None).await.0 != 200 {
        assert!(Instant::now() < deadline, "acl-a never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The broker delivers a connection's messages in order: the spoofed ones would be in.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        service.api(Method::GET, "/api/devices/acl-b", None).await.0,
        404
    );
    let ingest = service.ingest_stats().await;
    assert_eq!(ingest["messages_accepted"], 1, "{ingest}");

    // A command to a reaches a, and not b.
    let (status, _) = service
        .api(
            Method::POST,
            "/api/devices/acl-a/commands",
            Some(json!({"cmd": "request_status", "params": {}})),
        )
        .await;
    assert_eq!(status, 201);
    let received = |mut eventloop: rumqttc::EventLoop| async move {
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            match tokio::time::timeout_at(until, eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(p)))) => return Some(p.topic),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("{e}"),
                Err(_) => return None,
            }
        }
    };
    assert_eq!(received(a_loop).await.as_deref(), Some("iot/acl-a/command"));
    assert_eq!(received(b_loop).await, None, "b read a's command");
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn devicehub_reaches_a_tls_broker_with_a_custom_ca_and_a_client_certificate() {
    let (tag, dir) = scratch();
    let certs = servers::certificates(&dir);
    let broker = servers::mosquitto_tls(&dir, &["tls-1"], &certs);
    let mut service = Service::new(&tag, broker.port, &dir);
    service.set(
        "DEVICEHUB__MQTT__URL",
        format!(
            "mqtts://{}:{}@127.0.0.1:{}",
            servers::BROKER_USER,
            servers::BROKER_PASSWORD,
            broker.port
        ),
    );
    service.set("DEVICEHUB__MQTT__CA_FILE", certs.ca.display().to_string());
    service.set(
        "DEVICEHUB__MQTT__CLIENT_CERT_FILE",
        certs.client_cert.display().to_string(),
    );
    service.set(
        "DEVICEHUB__MQTT__CLIENT_KEY_FILE",
        certs.client_key.display().to_string(),
    );
    service.start().await;
    let (status, ready) = service.api(Method::GET, "/readyz", None).await;
    assert_eq!(status, 200, "{ready}");

    // A device over TLS with the same CA and a client certificate.
    let read = |path: &std::path::Path| std::fs::read(path).unwrap();
    let mut options = servers::device_options(broker.port, "tls-1", "tls-1".into());
    options.set_transport(rumqttc::Transport::tls(
        read(&certs.ca),
        Some((read(&certs.client_cert), read(&certs.client_key))),
        None,
    ));
    let (client, mut eventloop) = connect(options).await.unwrap();
    publish_acked(
        &client,
        &mut eventloop,
        "iot/tls-1/telemetry",
        datagram("tls-1", 1),
    )
    .await;
    assert_all_arrive(&mut service, 1, 20).await;

    // Without the client certificate the broker refuses the TLS handshake.
    let mut options = servers::device_options(broker.port, "tls-1", "tls-2".into());
    options.set_transport(rumqttc::Transport::tls(read(&certs.ca), None, None));
    assert!(connect(options).await.is_err());
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

/// MQTT over TLS as shipped: `devicehub certs mqtt` makes the CA and the broker's certificate,
/// the shipped broker config's TLS listener serves them, and devicehub and the simulator (the
/// `devicehub-sim` binary, as `scripts/run.sh` runs it) connect with `mqtts://` trusting the CA.
#[tokio::test]
async fn devicehub_and_the_simulator_talk_over_mqtts_with_generated_certificates() {
    let (tag, dir) = scratch();
    let certs = dir.join("certs");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_devicehub"))
        .args(["certs", "mqtt", "--dir"])
        .arg(&certs)
        .args(["--host", "127.0.0.1,localhost"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let device = format!("tls{}", &tag[..8]);
    let sim_device = format!("{device}-00000");
    let broker = servers::mosquitto_tls_with(
        &dir,
        &[&sim_device],
        (
            &certs.join("ca.crt"),
            &certs.join("server.crt"),
            &certs.join("server.key"),
        ),
        false,
    );
    let mut service = Service::new(&tag, broker.port, &dir);
    service.set(
        "DEVICEHUB__MQTT__URL",
        format!(
            "mqtts://{}:{}@127.0.0.1:{}",
            servers::BROKER_USER,
            servers::BROKER_PASSWORD,
            broker.port
        ),
    );
    service.set(
        "DEVICEHUB__MQTT__CA_FILE",
        certs.join("ca.crt").display().to_string(),
    );
    service.start().await;
    let (status, ready) = service.api(Method::GET, "/readyz", None).await;
    assert_eq!(status, 200, "{ready}");

    let sim = std::path::Path::new(env!("CARGO_BIN_EXE_devicehub")).with_file_name("devicehub-sim");
    assert!(
        sim.exists(),
        "{} (cargo test --workspace builds it)",
        sim.display()
    );
    let published = std::process::Command::new(&sim)
        .args([
            "load",
            "--devices",
            "1",
            "--connections",
            "1",
            "--measurements",
            "1",
            "--messages",
            "20",
            "--prefix",
        ])
        .arg(&device)
        .arg("--broker")
        .arg(format!(
            "mqtts://{sim_device}:{}@127.0.0.1:{}",
            servers::DEVICE_PASSWORD,
            broker.port
        ))
        .env("DEVICEHUB_SIM_MQTT_CA_FILE", certs.join("ca.crt"))
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    assert_all_arrive(&mut service, 20, 30).await;

    // Without the CA the simulator does not trust the broker: no plain fallback.
    let refused = std::process::Command::new(&sim)
        .args([
            "load",
            "--devices",
            "1",
            "--connections",
            "1",
            "--messages",
            "1",
            "--seconds",
            "3",
            "--prefix",
        ])
        .arg(&device)
        .arg("--broker")
        .arg(format!(
            "mqtts://{sim_device}:{}@127.0.0.1:{}",
            servers::DEVICE_PASSWORD,
            broker.port
        ))
        .env_remove("DEVICEHUB_SIM_MQTT_CA_FILE")
        .output()
        .unwrap();
    drop(refused);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_all_arrive(&mut service, 20, 5).await;
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_shipped_broker_refuses_what_devicehub_would_dead_letter_for_size() {
    let config = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/mosquitto/mosquitto.conf"),
    )
    .unwrap();
    let limit: usize = config
        .lines()
        .find_map(|l| l.strip_prefix("message_size_limit "))
        .expect("message_size_limit is set")
        .trim()
        .parse()
        .unwrap();
    let settings = devicehub::configuration::Settings::load(None).unwrap();
    assert_eq!(limit, settings.mqtt.max_payload_bytes);
}
