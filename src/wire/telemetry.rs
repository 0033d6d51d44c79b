//! `iot/{id}/telemetry`: the v1 flat object (seed 004 and the seed 002 devices) and the v2
//! envelope, with a fast path for the common v2 datagram.

use chrono_tz::Tz;
use serde_json::{Map, Value};

use super::{optional_str, reject, required_str, type_name, Ctx, TimeInput};
use crate::domain::{DeviceId, Message, RejectKind, Rejection};

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
    pub(super) fn telemetry(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
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
    pub(super) fn telemetry_v2_fast(&self, id: &DeviceId, payload: &[u8]) -> Option<Message> {
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
}

fn at(mut e: Rejection, index: usize) -> Rejection {
    e.detail = format!("measurements[{index}]: {}", e.detail);
    e
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
