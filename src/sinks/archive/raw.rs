//! The raw archive: payloads exactly as received, one JSON array per device per flush window,
//! under `{device_id}/date=YYYY-MM-DD/...`. Windows are cut by journal position, and an object's
//! key is named by the journal number of the window's first record, so replaying a window after a
//! crash rewrites the same objects instead of adding copies.

use chrono::{DateTime, Utc};

use crate::domain::DeviceId;
use crate::journal::Record;

/// An object of a window: its key, its bytes, and the journal numbers with data in it.
pub use crate::lake::WindowObject;

/// The one function that builds raw-archive keys.
pub fn raw_object_key(
    device: &DeviceId,
    window_first_no: u64,
    first_received: DateTime<Utc>,
) -> String {
    format!(
        "{device}/date={}/{}-{window_first_no:020}.json",
        first_received.format("%Y-%m-%d"),
        first_received.format("%Y%m%dT%H%M%SZ")
    )
}

/// The raw objects of one window, built as its records arrive: per device a JSON array of
/// `{received_at, topic, payload}`, the payload spliced in verbatim (it is valid JSON: the
/// collector decoded it). Keys are named by the window's first record.
pub struct RawWindow {
    first_no: u64,
    first_received: DateTime<Utc>,
    /// Per device: the JSON array so far, and the journal numbers in it.
    bodies: std::collections::HashMap<DeviceId, (Vec<u8>, Vec<u64>), foldhash::fast::RandomState>,
    bytes: usize,
    /// The last receive time and its RFC 3339 text: a batch of records shares one.
    received_text: Option<(DateTime<Utc>, String)>,
}

impl RawWindow {
    /// A window that starts with `first` (added separately).
    pub fn new(first: &Record) -> Self {
        Self {
            first_no: first.no,
            first_received: first.received,
            bodies: Default::default(),
            bytes: 0,
            received_text: None,
        }
    }

    pub fn add(&mut self, device: &DeviceId, record: &Record) {
        if self
            .received_text
            .as_ref()
            .is_none_or(|(t, _)| *t != record.received)
        {
            self.received_text = Some((record.received, record.received.to_rfc3339()));
        }
        let received = self.received_text.as_ref().map_or("", |(_, s)| s.as_str());
        let (body, records) = match self.bodies.get_mut(device) {
            Some((body, records)) => {
                body.extend_from_slice(b",\n");
                (body, records)
            }
            None => {
                let (body, records) = self
                    .bodies
                    .entry(device.clone())
                    .or_insert_with(|| (vec![b'['], Vec::new()));
                (body, records)
            }
        };
        records.push(record.no);
        let before = body.len();
        body.extend_from_slice(b"{\"received_at\":\"");
        // RFC 3339 needs no JSON escaping.
        body.extend_from_slice(received.as_bytes());
        body.extend_from_slice(b"\",\"topic\":");
        let _ = serde_json::to_writer(&mut *body, &record.topic);
        body.extend_from_slice(b",\"payload\":");
        body.extend_from_slice(&record.payload);
        body.push(b'}');
        self.bytes += body.len() - before;
    }

    /// Bytes gathered so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// `(key, JSON array, journal numbers)` per device.
    pub fn finish(self) -> Vec<WindowObject> {
        let (first_no, first_received) = (self.first_no, self.first_received);
        let mut objects: Vec<WindowObject> = self
            .bodies
            .into_iter()
            .map(|(device, (mut body, records))| {
                body.extend_from_slice(b"]\n");
                (
                    raw_object_key(&device, first_no, first_received),
                    body,
                    records,
                )
            })
            .collect();
        objects.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        objects
    }
}

/// Builds the raw objects of a window at once, for tests (see [`RawWindow`]).
#[cfg(test)]
pub fn raw_objects(window: &[(DeviceId, &Record)]) -> Vec<WindowObject> {
    let Some(first) = window.first().map(|(_, r)| *r) else {
        return Vec::new();
    };
    let mut raw = RawWindow::new(first);
    for (device, record) in window {
        raw.add(device, record);
    }
    raw.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_objects_are_valid_json_with_payloads_verbatim() {
        let record = |no, topic: &str, payload: &str| Record {
            no,
            received: DateTime::from_timestamp(1_770_912_000, 0).unwrap(),
            topic: topic.into(),
            payload: payload.as_bytes().to_vec(),
        };
        let a = record(7, "iot/a/telemetry", "{\"t\":  1}");
        let b = record(8, "iot/b/telemetry", "{\"t\":2}");
        let c = record(9, "iot/a/telemetry", "{\"t\":\n3}");
        let (da, db) = (DeviceId::parse("a").unwrap(), DeviceId::parse("b").unwrap());
        let objects = raw_objects(&[(da.clone(), &a), (db, &b), (da, &c)]);
        assert_eq!(objects.len(), 2);
        assert_eq!(
            (objects[0].2.as_slice(), objects[1].2.as_slice()),
            (&[7, 9][..], &[8][..])
        );
        assert_eq!(
            objects[0].0,
            "a/date=2026-02-12/20260212T160000Z-00000000000000000007.json"
        );
        let parsed: serde_json::Value = serde_json::from_slice(&objects[0].1).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), 2);
        assert!(
            String::from_utf8_lossy(&objects[0].1).contains("{\"t\":  1}"),
            "verbatim"
        );
    }
}
