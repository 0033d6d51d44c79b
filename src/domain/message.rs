//! What devices say: the pipeline's nouns. Decoding produces them, the journal's feed hands them
//! to the sinks, and every sink reads them; none of these types knows where it came from.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{DeviceId, MetricName, Rejection, Unit};

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
        /// When the device said it (`ts`), if it did.
        said_at: Option<DateTime<Utc>>,
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

/// A device's answer to a command.
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

impl QsEvent {
    /// The seed 003 ACK of this event: `stored` the first time, `duplicate` for a repeat.
    pub fn ack(&self, stored: bool) -> Vec<u8> {
        json!({
            "schema": self.schema,
            "event_id": self.event_id,
            "device_id": self.device_id.as_str(),
            "status": if stored { "stored" } else { "duplicate" },
        })
        .to_string()
        .into_bytes()
    }
}

/// One event of a `qs/v1` payload that could not be stored, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRejection {
    pub event_id: Option<String>,
    pub reason: Rejection,
    /// The offending event, re-serialized, for the dead-letter message.
    pub raw: String,
}
