//! Decoding is a pure function from `(topic, payload)` to a typed [`Message`] or a typed
//! [`Rejection`]. It never panics, whatever the bytes: every device protocol of DESIGN.md
//! ("MQTT ingest") is understood here and nowhere else.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::{DeviceId, MetricName, Unit};

/// One numeric sample of one metric of one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub device_id: DeviceId,
    pub time: DateTime<Utc>,
    pub metric: MetricName,
    pub value: f64,
    pub unit: Option<Unit>,
}

/// What a device said, by protocol.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `iot/{id}/telemetry`, v1 (flat object, no `seq`) or v2 (envelope with `seq`).
    Telemetry {
        device_id: DeviceId,
        seq: Option<u64>,
        readings: Vec<Reading>,
    },
    /// `iot/{id}/hello` (v2): firmware and health numbers.
    Hello {
        device_id: DeviceId,
        seq: Option<u64>,
        fw_version: String,
        readings: Vec<Reading>,
    },
    /// `iot/{id}/status`: online, or offline (the last will).
    Status {
        device_id: DeviceId,
        seq: Option<u64>,
        online: bool,
    },
    /// `iot/{id}/command/ack`.
    CommandAck {
        device_id: DeviceId,
        cmd_id: Uuid,
        result: CommandResult,
        detail: Option<String>,
    },
    /// `iot/{id}/ota/status`.
    OtaStatus {
        device_id: DeviceId,
        cmd_id: Uuid,
        state: String,
        progress_pct: Option<u8>,
    },
    /// `qs/v1/{id}/events`: each event of the payload, valid or not (they are acked one by one).
    Events {
        device_id: DeviceId,
        events: Vec<Result<QsEvent, EventRejection>>,
    },
    /// A Shelly Gen2 switch status (`{shelly-id}/status/switch:N` or `NotifyStatus`).
    Shelly {
        device_id: DeviceId,
        readings: Vec<Reading>,
    },
    /// Traffic on a subscribed topic that carries nothing for devicehub (e.g. a Shelly
    /// component other than a switch).
    Ignored,
}

impl Message {
    pub fn device_id(&self) -> Option<&DeviceId> {
        match self {
            Message::Telemetry { device_id, .. }
            | Message::Hello { device_id, .. }
            | Message::Status { device_id, .. }
            | Message::CommandAck { device_id, .. }
            | Message::OtaStatus { device_id, .. }
            | Message::Events { device_id, .. }
            | Message::Shelly { device_id, .. } => Some(device_id),
            Message::Ignored => None,
        }
    }

    /// The v2 `seq`, where the protocol has one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Message::Telemetry { seq, .. }
            | Message::Hello { seq, .. }
            | Message::Status { seq, .. } => *seq,
            _ => None,
        }
    }

    /// The numeric readings this message carries, in every protocol.
    pub fn readings(&self) -> Vec<&Reading> {
        match self {
            Message::Telemetry { readings, .. }
            | Message::Hello { readings, .. }
            | Message::Shelly { readings, .. } => readings.iter().collect(),
            Message::Events { events, .. } => events
                .iter()
                .filter_map(|e| e.as_ref().ok())
                .filter_map(|e| e.reading.as_ref())
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandResult {
    Accepted,
    Rejected,
    Error,
    Unsupported,
}

impl CommandResult {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandResult::Accepted => "accepted",
            CommandResult::Rejected => "rejected",
            CommandResult::Error => "error",
            CommandResult::Unsupported => "unsupported",
        }
    }
}

/// A valid seed 003 event.
#[derive(Debug, Clone, PartialEq)]
pub struct QsEvent {
    pub schema: i32,
    pub event_id: String,
    pub device_id: DeviceId,
    pub event_type: String,
    pub value_num: Option<f64>,
    pub value_text: Option<String>,
    pub unit: Option<String>,
    pub ts_device: Option<DateTime<Utc>>,
    pub meta: Value,
    /// The numeric value as a reading for InfluxDB (`metric` = `event_type` when tag-safe).
    pub reading: Option<Reading>,
}

/// One event of a `qs/v1` payload that could not be stored, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRejection {
    pub event_id: Option<String>,
    pub reason: Rejection,
    /// The offending event, re-serialized, for the dead-letter message.
    pub raw: String,
}

/// Why a payload was refused. `kind` is a stable label for counters and dead letters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct Rejection {
    pub kind: RejectKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectKind {
    UnknownTopic,
    InvalidDeviceId,
    TooLarge,
    NotJson,
    WrongShape,
    WrongType,
    MissingField,
    DeviceMismatch,
    NonFiniteValue,
    TimestampOutOfRange,
    TooManyMeasurements,
    InvalidName,
}

impl RejectKind {
    pub const ALL: [RejectKind; 12] = [
        RejectKind::UnknownTopic,
        RejectKind::InvalidDeviceId,
        RejectKind::TooLarge,
        RejectKind::NotJson,
        RejectKind::WrongShape,
        RejectKind::WrongType,
        RejectKind::MissingField,
        RejectKind::DeviceMismatch,
        RejectKind::NonFiniteValue,
        RejectKind::TimestampOutOfRange,
        RejectKind::TooManyMeasurements,
        RejectKind::InvalidName,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::UnknownTopic => "unknown_topic",
            RejectKind::InvalidDeviceId => "invalid_device_id",
            RejectKind::TooLarge => "too_large",
            RejectKind::NotJson => "not_json",
            RejectKind::WrongShape => "wrong_shape",
            RejectKind::WrongType => "wrong_type",
            RejectKind::MissingField => "missing_field",
            RejectKind::DeviceMismatch => "device_mismatch",
            RejectKind::NonFiniteValue => "non_finite_value",
            RejectKind::TimestampOutOfRange => "timestamp_out_of_range",
            RejectKind::TooManyMeasurements => "too_many_measurements",
            RejectKind::InvalidName => "invalid_name",
        }
    }
}

impl std::fmt::Display for RejectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn reject(kind: RejectKind, detail: impl Into<String>) -> Rejection {
    Rejection {
        kind,
        detail: detail.into(),
    }
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

/// Keys of a v1 flat message that are not metrics.
const V1_RESERVED: &[&str] = &[
    "timestamp",
    "ts",
    "device_id",
    "unit",
    "seq",
    "v",
    "msg_type",
];

impl Decoder {
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
            | Route::ShellyRpc(id) => Some(id),
            Route::ShellyOther => None,
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
    ShellyOther,
}

fn strip_prefix_level<'a>(topic: &'a str, prefix: &str) -> Option<&'a str> {
    topic.strip_prefix(prefix)?.strip_prefix('/')
}

fn device(raw: &str) -> Result<DeviceId, Rejection> {
    DeviceId::parse(raw).map_err(|e| reject(RejectKind::InvalidDeviceId, e.message))
}

struct Ctx<'a> {
    now: DateTime<Utc>,
    decoder: &'a Decoder,
}

/// A time field as written: text, or a number.
#[derive(Debug, Clone, Copy)]
enum TimeInput<'a> {
    Text(&'a str),
    Number(f64),
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for TimeInput<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = TimeInput<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a time as text or a number")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(TimeInput::Text(v))
            }

            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(TimeInput::Number(v as f64))
            }

            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(TimeInput::Number(v as f64))
            }

            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(TimeInput::Number(v))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A v2 telemetry datagram as [`Ctx::telemetry_v2_fast`] reads it. Other keys (`v`, ...) are
/// ignored, as the general path ignores them.
#[derive(serde::Deserialize)]
struct FastV2<'a> {
    #[serde(borrow, default)]
    device_id: Option<&'a str>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(borrow, default)]
    ts: Option<TimeInput<'a>>,
    #[serde(borrow)]
    measurements: Vec<FastMeasurement<'a>>,
}

#[derive(serde::Deserialize)]
struct FastMeasurement<'a> {
    #[serde(rename = "type")]
    metric: &'a str,
    val: f64,
    #[serde(borrow, default)]
    ts: Option<TimeInput<'a>>,
    #[serde(borrow, default)]
    unit: Option<&'a str>,
}

impl Ctx<'_> {
    fn object(&self, value: Value) -> Result<Map<String, Value>, Rejection> {
        match value {
            Value::Object(map) => Ok(map),
            other => Err(reject(
                RejectKind::WrongShape,
                format!("expected a JSON object, got {}", type_name(&other)),
            )),
        }
    }

    /// The payload's `device_id`, when present, must equal the topic's.
    fn same_device(&self, topic_id: &DeviceId, map: &Map<String, Value>) -> Result<(), Rejection> {
        match map.get("device_id") {
            None | Some(Value::Null) => Ok(()),
            Some(Value::String(s)) if s == topic_id.as_str() => Ok(()),
            Some(Value::String(s)) => Err(reject(
                RejectKind::DeviceMismatch,
                format!(
                    "payload device_id {s:?} differs from topic device id {:?}",
                    topic_id.as_str()
                ),
            )),
            Some(other) => Err(reject(
                RejectKind::WrongType,
                format!("device_id must be a string, got {}", type_name(other)),
            )),
        }
    }

    fn time(&self, value: Option<&Value>, field: &str) -> Result<DateTime<Utc>, Rejection> {
        match value {
            None | Some(Value::Null) => Ok(self.now),
            Some(v) => self.parse_time(v, field, Tz::UTC),
        }
    }

    fn parse_time(&self, value: &Value, field: &str, zone: Tz) -> Result<DateTime<Utc>, Rejection> {
        let input = match value {
            Value::String(s) => TimeInput::Text(s),
            Value::Number(n) => TimeInput::Number(n.as_f64().unwrap_or(f64::NAN)),
            other => {
                return Err(reject(
                    RejectKind::WrongType,
                    format!(
                        "{field} must be a string or a number, got {}",
                        type_name(other)
                    ),
                ))
            }
        };
        self.time_of(input, field, zone)
    }

    /// An ISO-8601 text, or epoch seconds or milliseconds told apart by magnitude.
    fn time_of(
        &self,
        input: TimeInput<'_>,
        field: &str,
        zone: Tz,
    ) -> Result<DateTime<Utc>, Rejection> {
        let time = match input {
            TimeInput::Text(s) => parse_time_text(s, zone).ok_or_else(|| {
                reject(
                    RejectKind::WrongType,
                    format!("{field} {s:?} is not an ISO-8601 time"),
                )
            })?,
            TimeInput::Number(n) => {
                let millis = if n.abs() < 1e11 { n * 1000.0 } else { n };
                if !millis.is_finite() || millis.abs() > 1e15 {
                    return Err(reject(
                        RejectKind::TimestampOutOfRange,
                        format!("{field} {n} is not a plausible epoch time"),
                    ));
                }
                DateTime::from_timestamp_millis(millis as i64).ok_or_else(|| {
                    reject(
                        RejectKind::TimestampOutOfRange,
                        format!("{field} {n} is out of range"),
                    )
                })?
            }
        };
        if time.timestamp() < EARLIEST || time > self.now + self.decoder.max_future_skew {
            return Err(reject(
                RejectKind::TimestampOutOfRange,
                format!(
                    "{field} {} is before 2000 or too far in the future",
                    time.to_rfc3339()
                ),
            ));
        }
        Ok(time)
    }

    fn seq(&self, map: &Map<String, Value>) -> Result<Option<u64>, Rejection> {
        match map.get("seq") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
                reject(
                    RejectKind::WrongType,
                    format!("seq must be a non-negative integer, got {n}"),
                )
            }),
            Some(other) => Err(reject(
                RejectKind::WrongType,
                format!("seq must be an integer, got {}", type_name(other)),
            )),
        }
    }

    fn reading(
        &self,
        device_id: &DeviceId,
        time: DateTime<Utc>,
        metric: &str,
        value: &Value,
        unit: Option<&str>,
    ) -> Result<Reading, Rejection> {
        let value = number(value, metric)?;
        self.reading_of(device_id, time, metric, value, unit)
    }

    fn reading_of(
        &self,
        device_id: &DeviceId,
        time: DateTime<Utc>,
        metric: &str,
        value: f64,
        unit: Option<&str>,
    ) -> Result<Reading, Rejection> {
        let metric = MetricName::parse(metric).map_err(|e| {
            reject(
                RejectKind::InvalidName,
                format!("metric {metric:?}: {}", e.message),
            )
        })?;
        let unit = unit
            .map(Unit::parse)
            .transpose()
            .map_err(|e| reject(RejectKind::InvalidName, format!("unit: {}", e.message)))?;
        Ok(Reading {
            device_id: device_id.clone(),
            time,
            metric,
            value,
            unit,
        })
    }

    fn telemetry(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
        let map = self.object(value)?;
        self.same_device(&id, &map)?;
        let v2 =
            map.get("v").and_then(Value::as_u64) == Some(2) || map.contains_key("measurements");
        if v2 {
            self.telemetry_v2(id, map)
        } else {
            self.telemetry_v1(id, map)
        }
    }

    fn telemetry_v1(&self, id: DeviceId, map: Map<String, Value>) -> Result<Message, Rejection> {
        let time = self.time(map.get("timestamp").or_else(|| map.get("ts")), "timestamp")?;
        let unit = optional_str(&map, "unit")?;
        let numeric: Vec<(&String, &Value)> = map
            .iter()
            .filter(|(k, v)| !V1_RESERVED.contains(&k.as_str()) && v.is_number())
            .collect();
        if numeric.is_empty() {
            return Err(reject(
                RejectKind::MissingField,
                "a v1 telemetry message needs at least one numeric field",
            ));
        }
        if numeric.len() > self.decoder.max_measurements {
            return Err(reject(
                RejectKind::TooManyMeasurements,
                format!(
                    "{} numeric fields exceed {}",
                    numeric.len(),
                    self.decoder.max_measurements
                ),
            ));
        }
        // `unit` names the unit of a single-metric message; otherwise units come from the names.
        let single = numeric.len() == 1;
        let readings = numeric
            .into_iter()
            .map(|(k, v)| {
                let unit = if single {
                    unit.or_else(|| implied_unit(k))
                } else {
                    implied_unit(k)
                };
                self.reading(&id, time, k, v, unit)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Message::Telemetry {
            device_id: id,
            seq: self.seq(&map)?,
            readings,
        })
    }

    fn telemetry_v2(&self, id: DeviceId, map: Map<String, Value>) -> Result<Message, Rejection> {
        let envelope_time = self.time(map.get("ts"), "ts")?;
        let seq = self.seq(&map)?;
        let measurements = match map.get("measurements") {
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(reject(
                    RejectKind::WrongType,
                    format!("measurements must be an array, got {}", type_name(other)),
                ))
            }
            None => {
                return Err(reject(
                    RejectKind::MissingField,
                    "measurements is required in a v2 telemetry message",
                ))
            }
        };
        if measurements.len() > self.decoder.max_measurements {
            return Err(reject(
                RejectKind::TooManyMeasurements,
                format!(
                    "{} measurements exceed {}",
                    measurements.len(),
                    self.decoder.max_measurements
                ),
            ));
        }
        let mut readings = Vec::with_capacity(measurements.len());
        for (i, m) in measurements.iter().enumerate() {
            let Value::Object(m) = m else {
                return Err(reject(
                    RejectKind::WrongType,
                    format!("measurements[{i}] must be an object"),
                ));
            };
            let metric = required_str(m, "type").map_err(|e| at(e, i))?;
            let value = m
                .get("val")
                .ok_or_else(|| at(reject(RejectKind::MissingField, "val is required"), i))?;
            let time = match m.get("ts") {
                None | Some(Value::Null) => envelope_time,
                Some(t) => self.parse_time(t, "ts", Tz::UTC).map_err(|e| at(e, i))?,
            };
            let unit = optional_str(m, "unit").map_err(|e| at(e, i))?;
            readings.push(
                self.reading(&id, time, metric, value, unit)
                    .map_err(|e| at(e, i))?,
            );
        }
        Ok(Message::Telemetry {
            device_id: id,
            seq,
            readings,
        })
    }

    /// The common v2 datagram read straight into borrowed fields, without building a
    /// `serde_json::Value` (a third of the collector's decoding time went to maps and their keys).
    /// It takes only what it can read exactly: `None` for anything else (escaped strings,
    /// duplicate keys, other types, a rejection) hands the payload to the general path, which
    /// gives the same message or the precise rejection.
    fn telemetry_v2_fast(&self, id: &DeviceId, payload: &[u8]) -> Option<Message> {
        let datagram: FastV2<'_> = serde_json::from_slice(payload).ok()?;
        if datagram.device_id.is_some_and(|d| d != id.as_str())
            || datagram.measurements.len() > self.decoder.max_measurements
        {
            return None;
        }
        let envelope_time = match datagram.ts {
            None => self.now,
            Some(t) => self.time_of(t, "ts", Tz::UTC).ok()?,
        };
        let mut readings = Vec::with_capacity(datagram.measurements.len());
        for m in &datagram.measurements {
            let time = match m.ts {
                None => envelope_time,
                Some(t) => self.time_of(t, "ts", Tz::UTC).ok()?,
            };
            if !m.val.is_finite() {
                return None;
            }
            readings.push(self.reading_of(id, time, m.metric, m.val, m.unit).ok()?);
        }
        Some(Message::Telemetry {
            device_id: id.clone(),
            seq: datagram.seq,
            readings,
        })
    }

    fn hello(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
        let map = self.object(value)?;
        self.same_device(&id, &map)?;
        let time = self.time(map.get("ts"), "ts")?;
        let fw_version = required_str(&map, "fw_version")?;
        if fw_version.is_empty() || fw_version.chars().count() > 64 {
            return Err(reject(
                RejectKind::InvalidName,
                "fw_version must be 1 to 64 characters",
            ));
        }
        let mut readings = Vec::new();
        for (field, unit) in [
            ("uptime_s", Some("s")),
            ("broker_connections", None),
            ("buf_usage_pct", Some("%")),
            ("temp_internal", Some("°C")),
        ] {
            if let Some(v) = map.get(field).filter(|v| !v.is_null()) {
                readings.push(self.reading(&id, time, field, v, unit)?);
            }
        }
        Ok(Message::Hello {
            device_id: id,
            seq: self.seq(&map)?,
            fw_version: fw_version.to_owned(),
            readings,
        })
    }

    fn status(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
        let map = self.object(value)?;
        self.same_device(&id, &map)?;
        self.time(map.get("ts"), "ts")?;
        let online = match required_str(&map, "status")? {
            "online" => true,
            "offline" => false,
            other => {
                return Err(reject(
                    RejectKind::WrongShape,
                    format!("status must be online or offline, got {other:?}"),
                ))
            }
        };
        Ok(Message::Status {
            device_id: id,
            seq: self.seq(&map)?,
            online,
        })
    }

    fn command_ack(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
        let map = self.object(value)?;
        self.same_device(&id, &map)?;
        let cmd_id = cmd_id(&map)?;
        let result = match required_str(&map, "result")? {
            "accepted" => CommandResult::Accepted,
            "rejected" => CommandResult::Rejected,
            "error" => CommandResult::Error,
            "unsupported" => CommandResult::Unsupported,
            other => {
                return Err(reject(
                    RejectKind::WrongShape,
                    format!(
                        "result must be accepted, rejected, error or unsupported, got {other:?}"
                    ),
                ))
            }
        };
        let detail = optional_str(&map, "detail")?.map(|d| truncate(d, 1000));
        Ok(Message::CommandAck {
            device_id: id,
            cmd_id,
            result,
            detail,
        })
    }

    fn ota_status(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
        let map = self.object(value)?;
        self.same_device(&id, &map)?;
        let cmd_id = cmd_id(&map)?;
        let state = required_str(&map, "ota_state")?;
        if state.is_empty() || state.len() > 32 {
            return Err(reject(
                RejectKind::InvalidName,
                "ota_state must be 1 to 32 characters",
            ));
        }
        let progress_pct = match map.get("progress_pct") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let p = number(v, "progress_pct")?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(reject(
                        RejectKind::WrongShape,
                        format!("progress_pct {p} is not 0 to 100"),
                    ));
                }
                Some(p.round() as u8)
            }
        };
        Ok(Message::OtaStatus {
            device_id: id,
            cmd_id,
            state: state.to_owned(),
            progress_pct,
        })
    }

    fn events(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
        let items = match value {
            Value::Array(items) => items,
            object @ Value::Object(_) => vec![object],
            other => {
                return Err(reject(
                    RejectKind::WrongShape,
                    format!(
                        "expected an event object or an array of them, got {}",
                        type_name(&other)
                    ),
                ))
            }
        };
        if items.is_empty() {
            return Err(reject(RejectKind::WrongShape, "empty event array"));
        }
        if items.len() > self.decoder.max_measurements {
            return Err(reject(
                RejectKind::TooManyMeasurements,
                format!(
                    "{} events exceed {}",
                    items.len(),
                    self.decoder.max_measurements
                ),
            ));
        }
        let events = items
            .into_iter()
            .map(|item| self.event(&id, item))
            .collect();
        Ok(Message::Events {
            device_id: id,
            events,
        })
    }

    fn event(&self, id: &DeviceId, item: Value) -> Result<QsEvent, EventRejection> {
        let event_id = item
            .get("event_id")
            .and_then(Value::as_str)
            .map(|s| truncate(s, 200));
        self.parse_event(id, &item)
            .map_err(|reason| EventRejection {
                event_id,
                reason,
                raw: truncate(&item.to_string(), 1024),
            })
    }

    fn parse_event(&self, id: &DeviceId, item: &Value) -> Result<QsEvent, Rejection> {
        let Value::Object(map) = item else {
            return Err(reject(
                RejectKind::WrongShape,
                format!("an event must be an object, got {}", type_name(item)),
            ));
        };
        for field in ["schema", "event_id", "device_id", "event_type"] {
            if map.get(field).is_none_or(Value::is_null) {
                return Err(reject(
                    RejectKind::MissingField,
                    format!("{field} is required"),
                ));
            }
        }
        let schema = map
            .get("schema")
            .and_then(Value::as_i64)
            .filter(|s| (1..=i64::from(i32::MAX)).contains(s))
            .ok_or_else(|| reject(RejectKind::WrongType, "schema must be a positive integer"))?
            as i32;
        let event_id = required_str(map, "event_id")?;
        if event_id.is_empty() || event_id.len() > 200 {
            return Err(reject(
                RejectKind::InvalidName,
                "event_id must be 1 to 200 characters",
            ));
        }
        self.same_device(id, map)?;
        let event_type = required_str(map, "event_type")?;
        if event_type.is_empty() || event_type.len() > 128 {
            return Err(reject(
                RejectKind::InvalidName,
                "event_type must be 1 to 128 characters",
            ));
        }
        let unit = optional_str(map, "unit")?.map(|u| truncate(u, 32));
        let (value_num, value_text) = match map.get("value") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Number(_)) => (Some(number(&map["value"], "value")?), None),
            Some(Value::String(s)) => (None, Some(truncate(s, 4096))),
            Some(Value::Bool(b)) => (None, Some(b.to_string())),
            Some(other) => (None, Some(truncate(&other.to_string(), 4096))),
        };
        let ts_field = map
            .get("ts_device")
            .filter(|v| !v.is_null())
            .or_else(|| map.get("timestamp"));
        let ts_device = match ts_field {
            None | Some(Value::Null) => None,
            Some(v) => Some(self.parse_time(v, "ts_device", self.decoder.local_zone)?),
        };
        let meta = match map.get("meta") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(m @ Value::Object(_)) => m.clone(),
            Some(other) => {
                return Err(reject(
                    RejectKind::WrongType,
                    format!("meta must be an object, got {}", type_name(other)),
                ))
            }
        };
        let reading = match (value_num, MetricName::parse(event_type)) {
            (Some(v), Ok(metric)) => Some(Reading {
                device_id: id.clone(),
                time: ts_device.unwrap_or(self.now),
                metric,
                value: v,
                unit: unit.as_deref().and_then(|u| Unit::parse(u).ok()),
            }),
            _ => None,
        };
        Ok(QsEvent {
            schema,
            event_id: event_id.to_owned(),
            device_id: id.clone(),
            event_type: event_type.to_owned(),
            value_num,
            value_text,
            unit,
            ts_device,
            meta,
            reading,
        })
    }

    fn shelly_switch(&self, id: DeviceId, value: &Value) -> Result<Message, Rejection> {
        let Value::Object(map) = value else {
            return Err(reject(
                RejectKind::WrongShape,
                "a Shelly switch status must be an object",
            ));
        };
        let readings = self.shelly_readings(&id, self.now, map)?;
        Ok(Message::Shelly {
            device_id: id,
            readings,
        })
    }

    fn shelly_rpc(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
        let map = self.object(value)?;
        if map.get("method").and_then(Value::as_str) != Some("NotifyStatus") {
            return Ok(Message::Ignored);
        }
        let Some(Value::Object(params)) = map.get("params") else {
            return Err(reject(
                RejectKind::MissingField,
                "NotifyStatus needs params",
            ));
        };
        let time = match params.get("ts") {
            None | Some(Value::Null) => self.now,
            Some(t) => self.parse_time(t, "params.ts", Tz::UTC)?,
        };
        let mut readings = Vec::new();
        for (component, status) in params {
            if let (true, Value::Object(status)) = (component.starts_with("switch:"), status) {
                readings.extend(self.shelly_readings(&id, time, status)?);
            }
        }
        Ok(Message::Shelly {
            device_id: id,
            readings,
        })
    }

    fn shelly_readings(
        &self,
        id: &DeviceId,
        time: DateTime<Utc>,
        status: &Map<String, Value>,
    ) -> Result<Vec<Reading>, Rejection> {
        let channel = status.get("id").and_then(Value::as_u64).unwrap_or(0);
        let mut readings = Vec::new();
        let mut push = |name: &str, value: &Value, unit: &str| -> Result<(), Rejection> {
            readings.push(self.reading(
                id,
                time,
                &format!("switch{channel}.{name}"),
                value,
                Some(unit),
            )?);
            Ok(())
        };
        for (field, name, unit) in [
            ("apower", "power", "W"),
            ("voltage", "voltage", "V"),
            ("current", "current", "A"),
        ] {
            if let Some(v) = status.get(field) {
                push(name, v, unit)?;
            }
        }
        if let Some(v) = status.get("aenergy").and_then(|e| e.get("total")) {
            push("energy", v, "Wh")?;
        }
        if let Some(v) = status.get("temperature").and_then(|t| t.get("tC")) {
            push("temperature", v, "°C")?;
        }
        if let Some(Value::Bool(on)) = status.get("output") {
            push("output", &Value::from(u8::from(*on)), "")?;
        }
        Ok(readings)
    }
}

fn at(mut e: Rejection, index: usize) -> Rejection {
    e.detail = format!("measurements[{index}]: {}", e.detail);
    e
}

fn number(value: &Value, field: &str) -> Result<f64, Rejection> {
    match value {
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or(f64::NAN);
            if v.is_finite() {
                Ok(v)
            } else {
                Err(reject(
                    RejectKind::NonFiniteValue,
                    format!("{field} is not a finite number"),
                ))
            }
        }
        Value::String(s)
            if matches!(
                s.to_ascii_lowercase().as_str(),
                "nan" | "inf" | "-inf" | "infinity" | "-infinity"
            ) =>
        {
            Err(reject(
                RejectKind::NonFiniteValue,
                format!("{field} is {s}"),
            ))
        }
        other => Err(reject(
            RejectKind::WrongType,
            format!("{field} must be a number, got {}", type_name(other)),
        )),
    }
}

fn required_str<'a>(map: &'a Map<String, Value>, field: &str) -> Result<&'a str, Rejection> {
    match map.get(field) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(reject(
            RejectKind::MissingField,
            format!("{field} is required"),
        )),
        Some(other) => Err(reject(
            RejectKind::WrongType,
            format!("{field} must be a string, got {}", type_name(other)),
        )),
    }
}

fn optional_str<'a>(
    map: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, Rejection> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(reject(
            RejectKind::WrongType,
            format!("{field} must be a string, got {}", type_name(other)),
        )),
    }
}

fn cmd_id(map: &Map<String, Value>) -> Result<Uuid, Rejection> {
    let raw = required_str(map, "cmd_id")?;
    Uuid::parse_str(raw).map_err(|_| {
        reject(
            RejectKind::WrongType,
            format!("cmd_id {raw:?} is not a UUID"),
        )
    })
}

fn parse_time_text(s: &str, zone: Tz) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?;
    zone.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Units of the seed 002 smart-house fields, which carry none.
fn implied_unit(metric: &str) -> Option<&'static str> {
    match metric {
        "power_usage" | "power" => Some("W"),
        "energy_consumption_wh" => Some("Wh"),
        "humidity" => Some("%"),
        "temperature" => Some("°C"),
        _ => None,
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
