//! The field rules every protocol shares: one message's context (the time it arrived, the
//! decoder's topic layout and zone), times in every form devices send them, sequence numbers,
//! numbers and strings.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use super::{reject, Decoder, EARLIEST};
use crate::domain::{DeviceId, MetricName, Reading, RejectKind, Rejection, Unit};

pub(super) struct Ctx<'a> {
    pub(super) now: DateTime<Utc>,
    pub(super) decoder: &'a Decoder,
}

/// A time field as written: text, or a number.
#[derive(Debug, Clone, Copy)]
pub(super) enum TimeInput<'a> {
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

impl Ctx<'_> {
    pub(super) fn object(&self, value: Value) -> Result<Map<String, Value>, Rejection> {
        match value {
            Value::Object(map) => Ok(map),
            other => Err(reject(
                RejectKind::WrongShape,
                format!("expected a JSON object, got {}", type_name(&other)),
            )),
        }
    }

    /// The payload's `device_id`, when present, must equal the topic's.
    pub(super) fn same_device(
        &self,
        topic_id: &DeviceId,
        map: &Map<String, Value>,
    ) -> Result<(), Rejection> {
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

    pub(super) fn time(
        &self,
        value: Option<&Value>,
        field: &str,
    ) -> Result<DateTime<Utc>, Rejection> {
        match value {
            None | Some(Value::Null) => Ok(self.now),
            Some(v) => self.parse_time(v, field, Tz::UTC),
        }
    }

    pub(super) fn parse_time(
        &self,
        value: &Value,
        field: &str,
        zone: Tz,
    ) -> Result<DateTime<Utc>, Rejection> {
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
    pub(super) fn time_of(
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

    pub(super) fn seq(&self, map: &Map<String, Value>) -> Result<Option<u64>, Rejection> {
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

    pub(super) fn reading(
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

    pub(super) fn reading_of(
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
}

pub(super) fn number(value: &Value, field: &str) -> Result<f64, Rejection> {
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

pub(super) fn required_str<'a>(
    map: &'a Map<String, Value>,
    field: &str,
) -> Result<&'a str, Rejection> {
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

pub(super) fn optional_str<'a>(
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

pub(super) fn parse_time_text(s: &str, zone: Tz) -> Option<DateTime<Utc>> {
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

pub(super) fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
