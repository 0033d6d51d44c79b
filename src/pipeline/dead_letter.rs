//! Dead letters: what devicehub cannot take, published with the reason so that whoever sent it
//! can see why. iot and Shelly messages go to `mqtt.deadletter_topic`, `qs/v1` ones (a whole
//! payload, or one event of it) to `<qs_prefix>/deadletter` (seed 003). Every dead letter is
//! `{"error","reason","topic","payload" (the first 1 KiB),"payload_bytes","received_at"}`, plus
//! `event_id` for an event; each is counted by reason and logged once a minute per reason.

use chrono::Utc;
use serde_json::json;

use crate::configuration::MqttSettings;
use crate::domain::{EventRejection, RejectKind, Rejection};
use crate::metrics::IngestMetrics;
use crate::stores::broker::Publisher;

/// The part of a refused payload a dead letter repeats.
const PREVIEW_BYTES: usize = 1024;

#[derive(Clone)]
pub struct DeadLetters {
    publisher: Publisher,
    iot_target: String,
    qs_prefix: String,
    metrics: IngestMetrics,
}

impl DeadLetters {
    pub fn new(publisher: Publisher, mqtt: &MqttSettings, metrics: IngestMetrics) -> Self {
        Self {
            publisher,
            iot_target: mqtt.deadletter_topic.clone(),
            qs_prefix: mqtt.qs_prefix.clone(),
            metrics,
        }
    }

    /// A message refused as a whole.
    pub fn message(&self, topic: &str, payload: &[u8], rejection: &Rejection) {
        let preview = String::from_utf8_lossy(&payload[..payload.len().min(PREVIEW_BYTES)]);
        let qs = topic
            .strip_prefix(self.qs_prefix.as_str())
            .is_some_and(|rest| rest.starts_with('/'));
        self.send(qs, topic, &preview, payload.len(), rejection, None);
    }

    /// One event of a `qs/v1` payload that could not be stored.
    pub fn event(&self, device: &str, event: &EventRejection) {
        let topic = format!("{}/{device}/events", self.qs_prefix);
        let raw = &event.raw;
        self.send(
            true,
            &topic,
            raw,
            raw.len(),
            &event.reason,
            event.event_id.as_deref(),
        );
    }

    fn send(
        &self,
        qs: bool,
        topic: &str,
        payload: &str,
        payload_bytes: usize,
        rejection: &Rejection,
        event_id: Option<&str>,
    ) {
        self.metrics.dead_lettered(rejection.kind);
        log_once_a_minute(rejection);
        let mut body = json!({
            "error": rejection.detail,
            "reason": rejection.kind.as_str(),
            "topic": topic,
            "payload": payload,
            "payload_bytes": payload_bytes,
            "received_at": Utc::now().to_rfc3339(),
        });
        if let Some(id) = event_id {
            body["event_id"] = id.into();
        }
        let target = if qs {
            format!("{}/deadletter", self.qs_prefix)
        } else {
            self.iot_target.clone()
        };
        if let Err(e) = self
            .publisher
            .publish(target, body.to_string().into_bytes(), false)
        {
            tracing::warn!(error = %e, "cannot publish a dead letter");
        }
    }
}

/// Logs a rejection once per kind per minute, so a misbehaving device cannot flood the log.
fn log_once_a_minute(rejection: &Rejection) {
    static LAST: std::sync::Mutex<Vec<(RejectKind, i64)>> = std::sync::Mutex::new(Vec::new());
    let now = Utc::now().timestamp();
    let Ok(mut last) = LAST.lock() else { return };
    match last.iter_mut().find(|(k, _)| *k == rejection.kind) {
        Some((_, at)) if now - *at < 60 => return,
        Some((_, at)) => *at = now,
        None => last.push((rejection.kind, now)),
    }
    tracing::warn!(reason = %rejection.kind, detail = %rejection.detail, "dead-lettered a message (logged once a minute per reason)");
}
