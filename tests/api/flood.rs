//! A flood of made-up device ids: 50,000 distinct ids at full speed. devicehub registers no more
//! than its registration rate, dead-letters the rest, keeps its memory bounded and the API
//! answering. The broker is the shipped config opened to anonymous clients: with its ACLs a
//! device can only use its own id, so a flood of ids needs as many credentials.

use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::Method;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;

use crate::harness::services as servers;
use crate::harness::{scratch, Service};

/// `DEVICEHUB_FLOOD_IDS` overrides it (scripts/bench-flood.sh).
fn ids() -> usize {
    std::env::var("DEVICEHUB_FLOOD_IDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000)
}
const CONNECTIONS: usize = 4;
/// Debug build (the test profile) and the release build alike; the release build's figures are
/// in BENCHMARKS.md (`scripts/bench-flood.sh`).
const RSS_BOUND: u64 = 150 << 20;

#[tokio::test]
async fn fifty_thousand_new_device_ids_keep_memory_bounded_and_the_api_answering() {
    let (tag, dir) = scratch();
    let broker = servers::mosquitto_anonymous(&dir);
    let port = broker.port;
    let prefix = "iot".to_owned();
    let mut service = Service::new(&tag, port, &dir);
    service.set("DEVICEHUB__MQTT__URL", format!("mqtt://127.0.0.1:{port}"));
    service.start().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = service.rss_bytes();
    let started = Instant::now();

    let mut publishers = Vec::new();
    for c in 0..CONNECTIONS {
        let prefix = prefix.clone();
        let tag = tag.clone();
        publishers.push(tokio::spawn(async move {
            let mut options = MqttOptions::new(format!("flood-{tag}-{c}"), "127.0.0.1", port);
            options.set_inflight(500);
            let (client, mut eventloop) = AsyncClient::new(options, 2000);
            let per = ids() / CONNECTIONS;
            let sender = tokio::spawn(async move {
                let ts = Utc::now().to_rfc3339();
                for i in c * per..(c + 1) * per {
                    let id = format!("flood-{i:05}");
                    let body = json!({"v": 2, "device_id": id, "ts": ts, "seq": 1, "msg_type": "telemetry",
                                      "measurements": [{"ts": ts, "type": "power", "val": 1.0, "unit": "W"}]});
                    client
                        .publish(format!("{prefix}/{id}/telemetry"), QoS::AtLeastOnce, false, body.to_string())
                        .await
                        .unwrap();
                }
                client
            });
            let mut acked = 0;
            while acked < per {
                if let Event::Incoming(Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
                    acked += 1;
                }
            }
            sender.await.unwrap()
        }));
    }

    // While it lasts: the process's memory, and how long the API takes to answer.
    let mut peak = idle;
    let mut slowest = Duration::ZERO;
    let (received, ingest) = loop {
        peak = peak.max(service.rss_bytes());
        let asked = Instant::now();
        let (status, _) = service
            .api(Method::GET, "/api/devices?limit=10", None)
            .await;
        slowest = slowest.max(asked.elapsed());
        assert_eq!(status, 200);
        let ingest = service.ingest_stats().await;
        let received = ingest["messages_received"].as_u64().unwrap_or(0);
        // Counted received as a batch is taken, accepted or refused once it is decided.
        let decided = ingest["messages_accepted"].as_u64().unwrap_or(0)
            + ingest["rejected"]["registration_limited"]
                .as_u64()
                .unwrap_or(0);
        if received >= ids() as u64 && decided >= received {
            break (received, ingest);
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "{received} of {} received after 180 s",
            ids()
        );
        assert!(service.is_running(), "devicehub exited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for p in publishers {
        p.await.unwrap();
    }
    let took = started.elapsed();
    peak = peak.max(service.rss_bytes());
    eprintln!(
        "flood of {} ids: {took:?}, RSS idle {} MB, peak {} MB, slowest API answer {slowest:?}; {ingest}",
        ids(),
        idle >> 20,
        peak >> 20
    );
    assert_eq!(received, ids() as u64);
    let accepted = ingest["messages_accepted"].as_u64().unwrap();
    let limited = ingest["rejected"]["registration_limited"].as_u64().unwrap();
    assert_eq!(accepted + limited, ids() as u64, "{ingest}");
    // A burst of 2,000 (the default registrations_per_minute) plus its refill while it lasted.
    let allowed = 2000 + (2000.0 * took.as_secs_f64() / 60.0).ceil() as u64;
    assert!(
        accepted <= allowed,
        "{accepted} registered, at most {allowed}"
    );
    assert!(accepted >= 2000, "{ingest}");
    assert!(peak < RSS_BOUND, "peak RSS {} MB", peak >> 20);
    assert!(
        slowest < Duration::from_secs(2),
        "slowest API answer {slowest:?}"
    );
    // The registry holds what was admitted.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, stats) = service.api(Method::GET, "/api/stats", None).await;
        if stats["total_devices"].as_u64() == Some(accepted) {
            break;
        }
        assert!(Instant::now() < deadline, "{stats}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(dir);
}
