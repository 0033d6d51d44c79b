//! `qs/v1/{id}/events` (seed 003): one event or an array of them, each valid or refused on its
//! own, since devices get an ACK or a dead letter per event.

use serde_json::{Map, Value};

use super::{
    multi_line, number, optional_str, reject, required_str, single_line, truncate, type_name, Ctx,
};
use crate::domain::{
    DeviceId, EventRejection, Message, MetricName, QsEvent, Reading, RejectKind, Rejection, Unit,
};

impl Ctx<'_> {
    pub(super) fn events(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
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
        single_line("event_id", event_id)?;
        if event_id.is_empty() || event_id.len() > 200 {
            return Err(reject(
                RejectKind::InvalidName,
                "event_id must be 1 to 200 characters",
            ));
        }
        self.same_device(id, map)?;
        let event_type = required_str(map, "event_type")?;
        single_line("event_type", event_type)?;
        if event_type.is_empty() || event_type.len() > 128 {
            return Err(reject(
                RejectKind::InvalidName,
                "event_type must be 1 to 128 characters",
            ));
        }
        let unit = optional_str(map, "unit")?;
        if let Some(unit) = unit {
            single_line("unit", unit)?;
        }
        let unit = unit.map(|u| truncate(u, 32));
        let (value_num, value_text) = event_value(map.get("value"))?;
        let ts_field = map
            .get("ts_device")
            .filter(|v| !v.is_null())
            .or_else(|| map.get("timestamp"));
        let ts_device = match ts_field {
            None | Some(Value::Null) => None,
            Some(v) => Some(self.parse_time(v, "ts_device", self.decoder.local_zone)?),
        };
        let meta = event_meta(map.get("meta"))?;
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
}

/// An event's `value`: a number (`value_num`), or text (`value_text`; other JSON as its text).
fn event_value(value: Option<&Value>) -> Result<(Option<f64>, Option<String>), Rejection> {
    Ok(match value {
        None | Some(Value::Null) => (None, None),
        Some(v @ Value::Number(_)) => (Some(number(v, "value")?), None),
        Some(Value::String(s)) => {
            multi_line("value", s)?;
            (None, Some(truncate(s, 4096)))
        }
        Some(Value::Bool(b)) => (None, Some(b.to_string())),
        Some(other) => (None, Some(truncate(&other.to_string(), 4096))),
    })
}

/// An event's `meta`: an object PostgreSQL can store as JSONB (none: `{}`).
fn event_meta(meta: Option<&Value>) -> Result<Value, Rejection> {
    match meta {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(m @ Value::Object(_)) => {
            crate::domain::storable_json("meta", m)
                .map_err(|e| reject(RejectKind::ControlCharacter, e.to_string()))?;
            Ok(m.clone())
        }
        Some(other) => Err(reject(
            RejectKind::WrongType,
            format!("meta must be an object, got {}", type_name(other)),
        )),
    }
}
