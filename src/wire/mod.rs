//! The MQTT wire protocol: decoding is a pure function from `(topic, payload)` to a typed
//! [`Message`] or a typed [`Rejection`]. It never panics, whatever the bytes: every device
//! protocol (docs/mqtt.md) is understood here and nowhere else, one module per protocol:
//! telemetry v1 and v2, hello and status, command acks and OTA status, `qs/v1` events, and
//! Shelly Gen2. The pipeline, the live relay, the outbox and the archive sink all read topics
//! through it.

mod command;
mod device;
mod events;
mod fields;
mod shelly;
mod telemetry;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::configuration::MqttSettings;
use crate::domain::{DeviceId, Message, RejectKind, Rejection};
use fields::{number, optional_str, required_str, truncate, type_name, Ctx, TimeInput};

fn reject(kind: RejectKind, detail: impl Into<String>) -> Rejection {
    Rejection::new(kind, detail)
}

/// A text field that names something (firmware, state, event id and type, unit): no control
/// characters, which PostgreSQL (NUL), line protocol and logs cannot take.
fn single_line(field: &'static str, value: &str) -> Result<(), Rejection> {
    crate::domain::single_line(field, value)
        .map_err(|e| reject(RejectKind::ControlCharacter, e.to_string()))
}

/// Free text (a command's detail, an event's text value): tabs and line breaks allowed.
fn multi_line(field: &'static str, value: &str) -> Result<(), Rejection> {
    crate::domain::multi_line(field, value)
        .map_err(|e| reject(RejectKind::ControlCharacter, e.to_string()))
}

/// Topic layout and limits; the defaults follow DESIGN.md.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub iot_prefix: String,
    pub qs_prefix: String,
    pub max_payload_bytes: usize,
    pub max_measurements: usize,
    /// How far ahead of the receive time a device clock may be.
    pub max_future_skew: chrono::Duration,
    /// Zone for `qs/v1` times written without an offset.
    pub local_zone: Tz,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            iot_prefix: "iot".into(),
            qs_prefix: "qs/v1".into(),
            max_payload_bytes: 256 * 1024,
            max_measurements: 200,
            max_future_skew: chrono::Duration::days(1),
            local_zone: Tz::UTC,
        }
    }
}

/// Device clocks before this are unset clocks, not history.
const EARLIEST: i64 = 946_684_800; // 2000-01-01T00:00:00Z

impl Decoder {
    /// The decoder for the broker settings: topic prefixes, payload limit, local zone.
    pub fn from_settings(mqtt: &MqttSettings) -> Self {
        Self {
            iot_prefix: mqtt.iot_prefix.clone(),
            qs_prefix: mqtt.qs_prefix.clone(),
            max_payload_bytes: mqtt.max_payload_bytes,
            local_zone: mqtt.local_timezone.parse().unwrap_or(Tz::UTC),
            ..Decoder::default()
        }
    }

    /// Decodes one MQTT message received at `now`.
    pub fn decode(
        &self,
        topic: &str,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Message, Rejection> {
        let route = self.route(topic)?;
        if payload.len() > self.max_payload_bytes {
            return Err(reject(
                RejectKind::TooLarge,
                format!(
                    "payload of {} bytes exceeds {} bytes",
                    payload.len(),
                    self.max_payload_bytes
                ),
            ));
        }
        let ctx = Ctx { now, decoder: self };
        if let Route::Telemetry(id) = &route {
            if let Some(message) = ctx.telemetry_v2_fast(id, payload) {
                return Ok(message);
            }
        }
        self.decode_value(&ctx, route, payload)
    }

    /// The general path: the payload as a `serde_json::Value`, every field checked by name.
    fn decode_value(
        &self,
        ctx: &Ctx<'_>,
        route: Route,
        payload: &[u8],
    ) -> Result<Message, Rejection> {
        let value: Value = serde_json::from_slice(payload)
            .map_err(|e| reject(RejectKind::NotJson, e.to_string()))?;
        match route {
            Route::Telemetry(id) => ctx.telemetry(id, value),
            Route::Hello(id) => ctx.hello(id, value),
            Route::Status(id) => ctx.status(id, value),
            Route::CommandAck(id) => ctx.command_ack(id, value),
            Route::OtaStatus(id) => ctx.ota_status(id, value),
            Route::Events(id) => ctx.events(id, value),
            Route::ShellySwitch(id) => ctx.shelly_switch(id, &value),
            Route::ShellyRpc(id) => ctx.shelly_rpc(id, value),
            Route::ShellyAnswer(id) => ctx.shelly_answer(id, value),
            Route::ShellyOther => Ok(Message::Ignored),
        }
    }

    /// The device a topic belongs to, without reading the payload (for records already decoded
    /// once, at ingest).
    pub fn topic_device(&self, topic: &str) -> Option<DeviceId> {
        match self.route(topic).ok()? {
            Route::Telemetry(id)
            | Route::Hello(id)
            | Route::Status(id)
            | Route::CommandAck(id)
            | Route::OtaStatus(id)
            | Route::Events(id)
            | Route::ShellySwitch(id)
            | Route::ShellyRpc(id)
            | Route::ShellyAnswer(id) => Some(id),
            Route::ShellyOther => None,
        }
    }

    /// The protocol family of a topic, as `mqtt.unknown_devices_by_protocol` names it: `iot`,
    /// `qs` or `shelly`.
    pub fn protocol(&self, topic: &str) -> &'static str {
        if strip_prefix_level(topic, &self.iot_prefix).is_some() {
            "iot"
        } else if strip_prefix_level(topic, &self.qs_prefix).is_some() {
            "qs"
        } else {
            "shelly"
        }
    }

    /// The topic filters the collector subscribes to.
    pub fn subscriptions(&self) -> Vec<String> {
        let iot = &self.iot_prefix;
        vec![
            format!("{iot}/+/telemetry"),
            format!("{iot}/+/hello"),
            format!("{iot}/+/status"),
            format!("{iot}/+/command/ack"),
            format!("{iot}/+/ota/status"),
            format!("{}/+/events", self.qs_prefix),
            "+/status/+".into(),
            "+/events/rpc".into(),
            format!("+/{SHELLY_RPC_SOURCE}/rpc"),
        ]
    }

    /// The topics that carry one device's readings (telemetry, hello, Shelly status): what the
    /// live relay of an API process subscribes to while someone watches the device. Device ids
    /// hold no `/`, `+` or `#`, so each is one plain topic level.
    pub fn reading_topics(&self, device: &str) -> [String; 4] {
        let iot = &self.iot_prefix;
        [
            format!("{iot}/{device}/telemetry"),
            format!("{iot}/{device}/hello"),
            format!("{device}/status/+"),
            format!("{device}/events/rpc"),
        ]
    }

    fn route(&self, topic: &str) -> Result<Route, Rejection> {
        let unknown = || {
            reject(
                RejectKind::UnknownTopic,
                format!("no protocol uses topic {topic:?}"),
            )
        };
        if let Some(rest) = strip_prefix_level(topic, &self.iot_prefix) {
            let (id, kind) = rest.split_once('/').ok_or_else(unknown)?;
            let id = device(id)?;
            return match kind {
                "telemetry" => Ok(Route::Telemetry(id)),
                "hello" => Ok(Route::Hello(id)),
                "status" => Ok(Route::Status(id)),
                "command/ack" => Ok(Route::CommandAck(id)),
                "ota/status" => Ok(Route::OtaStatus(id)),
                _ => Err(unknown()),
            };
        }
        if let Some(rest) = strip_prefix_level(topic, &self.qs_prefix) {
            return match rest.split_once('/') {
                Some((id, "events")) => Ok(Route::Events(device(id)?)),
                _ => Err(unknown()),
            };
        }
        let parts: Vec<&str> = topic.split('/').collect();
        match parts.as_slice() {
            [id, "status", component] if component.starts_with("switch:") => {
                Ok(Route::ShellySwitch(device(id)?))
            }
            [_, "status", _] => Ok(Route::ShellyOther),
            [id, "events", "rpc"] => Ok(Route::ShellyRpc(device(id)?)),
            [id, SHELLY_RPC_SOURCE, "rpc"] => Ok(Route::ShellyAnswer(device(id)?)),
            _ => Err(unknown()),
        }
    }
}

enum Route {
    Telemetry(DeviceId),
    Hello(DeviceId),
    Status(DeviceId),
    CommandAck(DeviceId),
    OtaStatus(DeviceId),
    Events(DeviceId),
    ShellySwitch(DeviceId),
    ShellyRpc(DeviceId),
    /// A Shelly's answer to devicehub's RPC over MQTT (`{id}/devicehub/rpc`).
    ShellyAnswer(DeviceId),
    ShellyOther,
}

/// The `src` of devicehub's RPC requests to a Shelly over MQTT is `{id}/devicehub`, so that the
/// device answers on `{id}/devicehub/rpc`: under its own id, where the broker's ACL lets it write.
pub const SHELLY_RPC_SOURCE: &str = "devicehub";

fn strip_prefix_level<'a>(topic: &'a str, prefix: &str) -> Option<&'a str> {
    topic.strip_prefix(prefix)?.strip_prefix('/')
}

fn device(raw: &str) -> Result<DeviceId, Rejection> {
    DeviceId::parse(raw).map_err(|e| reject(RejectKind::InvalidDeviceId, e.message))
}

#[cfg(test)]
mod tests;
