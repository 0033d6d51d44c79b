//! ESP32 event devices speaking `qs/v1` (seed 003): events with an `event_id`, acknowledged one by
//! one on `qs/v1/{device_id}/acks`; an event without an ACK (`stored` or `duplicate`) within the
//! timeout is sent again with the same `event_id`, up to a retry limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::link::{Link, LinkOptions};
use crate::physics::{daily, round, MeanReverting, Rng};

pub struct Esp32Config {
    pub device_id: String,
    pub interval: Duration,
    pub ack_timeout: Duration,
    pub max_retries: u32,
    pub qs_prefix: String,
    pub brokers: Vec<String>,
    pub seed: u64,
    pub fw_version: String,
}

/// What a device has seen of its events, for tests and the run summary.
#[derive(Debug, Default)]
pub struct Esp32Stats {
    pub sent: AtomicU64,
    pub retried: AtomicU64,
    pub acked: AtomicU64,
    pub given_up: AtomicU64,
}

struct Pending {
    body: String,
    sent_at: tokio::time::Instant,
    attempts: u32,
}

pub async fn run(config: Esp32Config, stats: Arc<Esp32Stats>) -> anyhow::Result<()> {
    let mut rng = Rng::for_device(config.seed, &config.device_id);
    let mut temperature = MeanReverting::new(22.0 + rng.normal(), 0.01, 0.05);
    let events_topic = format!("{}/{}/events", config.qs_prefix, config.device_id);
    let mut link = Link::connect(
        &config.brokers,
        LinkOptions {
            client_id: format!("sim-{}", config.device_id),
            device_id: config.device_id.clone(),
            will: None,
            on_connect: None,
            subscriptions: vec![format!("{}/{}/acks", config.qs_prefix, config.device_id)],
        },
    )
    .await?;
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut counter = 0u64;
    let boot_id = rng.below(u64::from(u32::MAX));
    let mut tick = tokio::time::interval(config.interval);
    let mut retry = tokio::time::interval(config.ack_timeout.min(Duration::from_secs(1)));
    let mut event = |event_type: &str, value: Value, unit: Option<&str>, meta: Value| {
        counter += 1;
        let event_id = format!("{}-{boot_id:08x}-{counter}", config.device_id);
        let body = json!({
            "schema": 1,
            "event_id": event_id,
            "device_id": config.device_id,
            "event_type": event_type,
            "value": value,
            "unit": unit,
            "ts_device": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "meta": meta,
        });
        (event_id, body.to_string())
    };
    let boot = event(
        "boot",
        json!(config.fw_version),
        None,
        json!({"reset_reason": "power_on"}),
    );
    let mut outbox = vec![boot];
    loop {
        for (event_id, body) in outbox.drain(..) {
            link.publish(&events_topic, false, body.clone()).await;
            stats.sent.fetch_add(1, Ordering::Relaxed);
            pending.insert(
                event_id,
                Pending {
                    body,
                    sent_at: tokio::time::Instant::now(),
                    attempts: 1,
                },
            );
        }
        tokio::select! {
            _ = tick.tick() => {
                let now = Utc::now();
                let t = temperature.step(&mut rng, 22.0 + 2.0 * daily(now, 15.0), config.interval.as_secs_f64());
                let rssi = -55 - rng.below(20) as i64;
                outbox.push(event("temperature", json!(round(t, 2)), Some("C"), json!({"rssi": rssi, "fw": config.fw_version})));
                if rng.chance(0.2) {
                    let state = if rng.chance(0.5) { "open" } else { "closed" };
                    outbox.push(event("door", json!(state), None, json!({"rssi": rssi})));
                }
            }
            _ = retry.tick() => {
                let now = tokio::time::Instant::now();
                let mut give_up = Vec::new();
                for (id, p) in pending.iter_mut() {
                    if now.duration_since(p.sent_at) < config.ack_timeout {
                        continue;
                    }
                    if p.attempts > config.max_retries {
                        give_up.push(id.clone());
                        continue;
                    }
                    p.attempts += 1;
                    p.sent_at = now;
                    link.publish(&events_topic, false, p.body.clone()).await;
                    stats.retried.fetch_add(1, Ordering::Relaxed);
                }
                for id in give_up {
                    pending.remove(&id);
                    stats.given_up.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(message) = link.incoming.recv() => {
                // `{"schema","event_id","device_id","status":"stored"|"duplicate"}`
                let Ok(ack) = serde_json::from_slice::<Value>(&message.payload) else { continue };
                let status = ack["status"].as_str().unwrap_or_default();
                if matches!(status, "stored" | "duplicate") && ack["device_id"] == config.device_id.as_str() {
                    if let Some(id) = ack["event_id"].as_str() {
                        if pending.remove(id).is_some() {
                            stats.acked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
    }
}
