//! The InfluxDB sink: every reading becomes a point of line protocol with the measurement's own
//! timestamp, so writing a point again (a retry, a replay) stores it once. Tags: `channel` (the
//! relay or meter channel of a Shelly metric `switchN.…`), `device_id`, `device_type` (from the
//! registry, where known), `metric`, `unit`.

use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::Bytes;

use super::{Refusal, SinkError, Write};
use crate::domain::Reading;
use crate::journal::{FileCursor, Journaled};
use crate::metrics::SinkMetrics;
use crate::pipeline::enrich::DeviceTypes;
use crate::stores::influxdb::{InfluxClient, MEASUREMENT};

#[derive(Clone)]
pub struct InfluxSink {
    client: InfluxClient,
    device_types: Arc<DeviceTypes>,
    cursor: FileCursor,
    metrics: SinkMetrics,
}

impl InfluxSink {
    pub fn new(
        client: InfluxClient,
        device_types: Arc<DeviceTypes>,
        cursor: FileCursor,
        metrics: SinkMetrics,
    ) -> Self {
        Self {
            client,
            device_types,
            cursor,
            metrics,
        }
    }
}

impl super::Registered for InfluxSink {
    fn build(context: &super::SinkContext<'_>) -> Self {
        Self::new(
            context.influx.clone(),
            context.device_types.clone(),
            context.file_cursor(<Self as super::Sink>::NAME),
            context.metrics.clone(),
        )
    }

    fn batching(settings: &crate::configuration::Settings) -> crate::configuration::BatchSettings {
        settings.influxdb.batch
    }
}

/// Line protocol being gathered, with where each record's lines end.
pub struct Lines {
    text: String,
    /// Per record: its journal number, the end of its lines in `text`, and the points so far.
    records: Vec<Boundary>,
}

#[derive(Debug, Clone, Copy)]
struct Boundary {
    journal_no: u64,
    end: usize,
    points: u64,
}

/// A batch ready to write. `Bytes`, so that a retry or a part of the batch does not copy it.
pub struct Points {
    body: Bytes,
    records: Vec<Boundary>,
    /// Ranges of `records` still to write, the next last.
    todo: Vec<std::ops::Range<usize>>,
}

impl Points {
    /// The lines of `records[range]` and their number of points.
    fn part(&self, range: &std::ops::Range<usize>) -> (Bytes, u64) {
        let before = |i: usize| {
            i.checked_sub(1)
                .map_or((0, 0), |p| (self.records[p].end, self.records[p].points))
        };
        let (start, points_before) = before(range.start);
        let (end, points_end) = before(range.end);
        (self.body.slice(start..end), points_end - points_before)
    }
}

impl super::Sink for InfluxSink {
    const NAME: &'static str = "influxdb";
    type Batch = Lines;
    type Payload = Points;
    type Writer = InfluxWriter;
    type Cursor = FileCursor;

    fn batch(&self, _first: &Journaled) -> Lines {
        Lines {
            text: String::with_capacity(64 * 1024),
            records: Vec::new(),
        }
    }

    async fn add(&mut self, batch: &mut Lines, records: &[Arc<Journaled>]) {
        let types = self.device_types.of(records).await;
        let mut points = batch.records.last().map_or(0, |b| b.points);
        for journaled in records {
            let mut readings = journaled.message.readings().into_iter().peekable();
            // One device per message: its type is looked up once.
            let device_type = readings.peek().and_then(|r| types.of(&r.device_id));
            for reading in readings {
                push_line(&mut batch.text, reading, device_type);
                points += 1;
            }
            batch.records.push(Boundary {
                journal_no: journaled.record.no,
                end: batch.text.len(),
                points,
            });
        }
    }

    fn bytes(batch: &Lines) -> usize {
        batch.text.len()
    }

    fn finish(&mut self, batch: Lines) -> Points {
        Points {
            body: Bytes::from(batch.text),
            todo: std::iter::once(0..batch.records.len()).collect(),
            records: batch.records,
        }
    }

    fn writer(&self) -> InfluxWriter {
        InfluxWriter {
            client: self.client.clone(),
            metrics: self.metrics.clone(),
        }
    }

    fn cursor(&self) -> FileCursor {
        self.cursor.clone()
    }
}

#[derive(Clone)]
pub struct InfluxWriter {
    client: InfluxClient,
    metrics: SinkMetrics,
}

impl Write<Points> for InfluxWriter {
    /// Writes the batch in one request. When InfluxDB refuses it as invalid (400, 413, 422), the
    /// halves are written on their own, and so on down to the records it refuses one by one;
    /// points already stored by a partial write are stored once, whatever is written again.
    async fn write(
        &self,
        points: &mut Points,
        _span: RangeInclusive<u64>,
        refused: &mut Vec<Refusal>,
    ) -> Result<(), SinkError> {
        while let Some(range) = points.todo.pop() {
            let (body, count) = points.part(&range);
            if body.is_empty() {
                continue;
            }
            let error = match self.client.write(&body).await {
                Ok(()) => {
                    self.metrics.points_written.inc_by(count);
                    continue;
                }
                Err(e) => e,
            };
            self.metrics.influx_errors.inc();
            if !error.is_permanent() {
                points.todo.push(range);
                return Err(match error.status() {
                    Some(401 | 403 | 404) => SinkError::misconfigured(error.to_string()),
                    _ => SinkError::retriable(error.to_string()),
                });
            }
            if range.len() == 1 {
                refused.push(Refusal {
                    journal_no: points.records[range.start].journal_no,
                    reason: error.to_string(),
                });
                continue;
            }
            let middle = range.start + range.len() / 2;
            points.todo.push(middle..range.end);
            points.todo.push(range.start..middle);
        }
        Ok(())
    }

    /// InfluxDB 1.x answers 404 to writes into a database that does not exist (yet, or any
    /// more): (re)create it. Idempotent, and nothing to do for the v2 API.
    async fn recover(&self, _error: &SinkError) {
        if let Err(e) = self.client.ensure_database().await {
            tracing::debug!(error = %e, "cannot create the InfluxDB database");
        }
    }
}

/// One line of line protocol; tags in key order, as InfluxDB prefers them.
pub fn push_line(out: &mut String, reading: &Reading, device_type: Option<&str>) {
    out.push_str(MEASUREMENT);
    if let Some(channel) = channel_of(reading.metric.as_str()) {
        out.push_str(",channel=");
        out.push_str(channel);
    }
    out.push_str(",device_id=");
    escape_tag(out, reading.device_id.as_str());
    if let Some(device_type) = device_type.filter(|t| !t.is_empty()) {
        out.push_str(",device_type=");
        escape_tag(out, device_type);
    }
    out.push_str(",metric=");
    escape_tag(out, reading.metric.as_str());
    if let Some(unit) = reading.unit.as_ref().filter(|u| !u.as_str().is_empty()) {
        out.push_str(",unit=");
        escape_tag(out, unit.as_str());
    }
    let nanos = reading.time.timestamp_nanos_opt().unwrap_or_default();
    // ryu prints f64 in the shortest form that reads back exactly, always with a decimal point
    // or an exponent (a float in line protocol); decoding has refused NaN and infinities.
    out.push_str(" value=");
    out.push_str(ryu::Buffer::new().format(reading.value));
    out.push(' ');
    out.push_str(itoa::Buffer::new().format(nanos));
    out.push('\n');
}

/// The channel number of a per-channel metric (`switch2.power` → `2`).
fn channel_of(metric: &str) -> Option<&str> {
    let (component, _) = metric.split_once('.')?;
    let digits = component.strip_prefix("switch")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// A tag value as line protocol needs it: `,`, `=`, space and `\\` escaped with a backslash.
/// Line protocol has no escape for control characters (a newline ends the point), so each
/// becomes an escaped space; ids, metrics and units cannot hold any, a device type set before
/// the API refused them could.
fn escape_tag(out: &mut String, value: &str) {
    let special = |c: char| matches!(c, ',' | '=' | ' ' | '\\') || c.is_control();
    if !value.contains(special) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        if c.is_control() {
            out.push_str("\\ ");
            continue;
        }
        if special(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{DeviceId, MetricName, Unit};

    #[test]
    fn a_shelly_channel_is_a_tag() {
        assert_eq!(channel_of("switch2.power"), Some("2"));
        assert_eq!(channel_of("switch13.energy"), Some("13"));
        for metric in ["switch.power", "switchx.power", "power", "switch2"] {
            assert_eq!(channel_of(metric), None, "{metric}");
        }
    }

    #[test]
    fn readings_become_line_protocol_with_their_own_timestamp() {
        let reading = Reading {
            device_id: DeviceId::parse("meter-1").unwrap(),
            time: chrono::Utc.with_ymd_and_hms(2026, 2, 12, 16, 0, 0).unwrap(),
            metric: MetricName::parse("voltage_dc").unwrap(),
            value: 750.0,
            unit: Some(Unit::parse("k W").unwrap()),
        };
        let mut out = String::new();
        push_line(&mut out, &reading, None);
        assert_eq!(out, "iot_telemetry,device_id=meter-1,metric=voltage_dc,unit=k\\ W value=750.0 1770912000000000000\n");
        out.clear();
        push_line(&mut out, &reading, Some("dc meter,v2"));
        assert_eq!(out, "iot_telemetry,device_id=meter-1,device_type=dc\\ meter\\,v2,metric=voltage_dc,unit=k\\ W value=750.0 1770912000000000000\n");
        out.clear();
        push_line(&mut out, &reading, Some("dc\nmeter\r\u{0}"));
        assert_eq!(out.lines().count(), 1, "one point, one line: {out:?}");
        assert!(
            out.contains(",device_type=dc\\ meter\\ \\ ,metric="),
            "{out:?}"
        );
        for (value, text) in [
            (0.1, "0.1"),
            (-3.5, "-3.5"),
            (1e-7, "1e-7"),
            (2.5e21, "2.5e21"),
        ] {
            out.clear();
            push_line(
                &mut out,
                &Reading {
                    value,
                    ..reading.clone()
                },
                None,
            );
            assert!(out.contains(&format!(" value={text} ")), "{out}");
            assert_eq!(text.parse::<f64>().unwrap(), value, "reads back exactly");
        }
    }
}
