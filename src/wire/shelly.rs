//! Shelly Gen2 over MQTT: `{shelly-id}/status/switch:N` and the `NotifyStatus` of
//! `{shelly-id}/events/rpc`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use super::{reject, Ctx};
use crate::domain::{DeviceId, Message, Reading, RejectKind, Rejection};

impl Ctx<'_> {
    pub(super) fn shelly_switch(&self, id: DeviceId, value: &Value) -> Result<Message, Rejection> {
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

    pub(super) fn shelly_rpc(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
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

    /// A Shelly's JSON-RPC answer on `{id}/devicehub/rpc` to a command devicehub sent over
    /// MQTT: `{"id": cmd_id, "result": ...}` or `{"id": cmd_id, "error": {"code", "message"}}`.
    pub(super) fn shelly_answer(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
        let map = self.object(value)?;
        let raw = map
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| reject(RejectKind::MissingField, "an RPC answer needs its id"))?;
        let cmd_id = uuid::Uuid::parse_str(raw).map_err(|_| {
            reject(
                RejectKind::WrongType,
                format!("RPC id {raw:?} is not a command id"),
            )
        })?;
        let (result, detail) = match (map.get("result"), map.get("error")) {
            (_, Some(error)) if !error.is_null() => (
                crate::domain::CommandResult::Error,
                format!("Shelly RPC error: {error}"),
            ),
            (Some(result), _) => (
                crate::domain::CommandResult::Accepted,
                format!("Shelly RPC: {result}"),
            ),
            _ => {
                return Err(reject(
                    RejectKind::MissingField,
                    "an RPC answer needs a result or an error",
                ))
            }
        };
        let detail: String = detail.chars().filter(|c| !c.is_control()).collect();
        Ok(Message::CommandAck {
            device_id: id,
            cmd_id,
            result,
            detail: Some(super::truncate(&detail, 1000)),
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
