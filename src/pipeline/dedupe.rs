//! Dropping what was already taken: repeats of `(device_id, seq)` (devices publishing to several
//! brokers), and messages the broker redelivers after a crash between journaling and acking.

use std::collections::{HashSet, VecDeque};

use sqlx::PgPool;

use super::idle::IdleMap;
use crate::domain::DeviceId;
use crate::journal::{Journal, JournalReader};
use crate::registry;
use crate::wire::Decoder;

/// Drops repeats of `(device_id, seq)`: the last number per device and a 64-wide window of
/// numbers below it (devices publishing to several brokers deliver each message more than once,
/// not always in order). A 0, or a number far below the window, is a device restart. Devices
/// idle longest are forgotten past [`super::idle::DEVICE_STATE_CAPACITY`], and their last number
/// restored from the registry when they return ([`Dedupe::restore`]).
#[derive(Default)]
pub struct Dedupe {
    windows: IdleMap<DeviceId, (u64, u64)>,
}

impl Dedupe {
    /// Before `accept`ing a batch: the registry's last number of each of `devices` that was
    /// forgotten (one query, and only once something has been forgotten).
    pub async fn restore<'a>(
        &mut self,
        pool: &PgPool,
        devices: impl Iterator<Item = &'a DeviceId>,
    ) {
        if !self.windows.has_forgotten() {
            return;
        }
        let missing = devices
            .filter(|d| !self.windows.contains_key(*d))
            .map(DeviceId::as_str)
            .collect();
        for (device, last) in registry::sequences::restore(pool, missing).await {
            if let Ok(id) = DeviceId::parse(&device) {
                self.windows.insert(id, (last, 1));
            }
        }
    }

    pub fn accept(&mut self, device: &DeviceId, seq: u64) -> bool {
        let Some((last, seen)) = self.windows.get_mut(device) else {
            self.windows.insert(device.clone(), (seq, 1));
            return true;
        };
        if seq > *last {
            let shift = seq - *last;
            *seen = if shift >= 64 { 0 } else { *seen << shift } | 1;
            *last = seq;
            return true;
        }
        let back = *last - seq;
        if seq == 0 && *last != 0 || back >= 64 {
            *last = seq;
            *seen = 1;
            return true;
        }
        let bit = 1u64 << back;
        if *seen & bit != 0 {
            return false;
        }
        *seen |= bit;
        true
    }
}

/// Fingerprints of the most recently journaled messages. After a crash between writing the
/// journal and acknowledging, the broker redelivers those messages with the DUP flag; a DUP
/// message whose exact topic and payload were journaled recently is one of them.
#[derive(Default)]
pub struct Redeliveries {
    order: VecDeque<u64>,
    seen: HashSet<u64, foldhash::fast::RandomState>,
}

impl Redeliveries {
    /// More than any batch of unacknowledged messages can hold.
    const CAPACITY: usize = 65_536;

    pub fn fingerprint(topic: &str, payload: &[u8]) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = foldhash::quality::FixedState::with_seed(0x6465_7669_6365_6875).build_hasher();
        topic.hash(&mut h);
        payload.hash(&mut h);
        h.finish()
    }

    pub fn remember(&mut self, fingerprint: u64) {
        if self.seen.insert(fingerprint) {
            self.order.push_back(fingerprint);
            if self.order.len() > Self::CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }

    pub fn contains(&self, fingerprint: u64) -> bool {
        self.seen.contains(&fingerprint)
    }
}

/// Both filters, as ingest uses them.
pub struct Dedupers {
    pub seq: Dedupe,
    pub redeliveries: Redeliveries,
    pub shelly: ShellyStatus,
}

impl Dedupers {
    /// The filters after a restart: the registry's last numbers, then the journal's unsent tail
    /// (after `written`, what every sink has written) for `seq`; the journal's last 65,536
    /// records for redeliveries.
    pub async fn warm(
        pool: &PgPool,
        decoder: &Decoder,
        journal: &Journal,
        written: u64,
    ) -> anyhow::Result<Self> {
        let mut seq = Dedupe::default();
        for (device, last) in registry::sequences::last_numbers(pool).await? {
            if let Ok(id) = DeviceId::parse(&device) {
                seq.accept(&id, last);
            }
        }
        let mut reader = JournalReader::reporting(journal.dir(), written, journal.damage().clone());
        loop {
            let records = reader.read(journal.last_no(), 10_000)?;
            if records.is_empty() {
                break;
            }
            for r in records {
                if let Ok(m) = decoder.decode(&r.topic, &r.payload, r.received) {
                    if let (Some(id), Some(s)) = (m.device_id(), m.seq()) {
                        seq.accept(id, s);
                    }
                }
            }
        }
        let mut redeliveries = Redeliveries::default();
        let tail_start = journal.first_no().max(
            journal
                .last_no()
                .saturating_sub(Redeliveries::CAPACITY as u64 - 1),
        );
        let mut tail = JournalReader::reporting(
            journal.dir(),
            tail_start.saturating_sub(1),
            journal.damage().clone(),
        );
        loop {
            let records = tail.read(journal.last_no(), 10_000)?;
            if records.is_empty() {
                break;
            }
            for r in records {
                redeliveries.remember(Redeliveries::fingerprint(&r.topic, &r.payload));
            }
        }
        Ok(Self {
            seq,
            redeliveries,
            shelly: ShellyStatus::default(),
        })
    }
}

/// A Gen2 Shelly with both of its MQTT notifications on says each status twice: in full on
/// `{id}/status/switch:N` (`status_ntf`) and as a NotifyStatus on `{id}/events/rpc` (`rpc_ntf`),
/// at slightly different times. A device seen publishing the first is read from there only: its
/// NotifyStatus switch readings are dropped, so no reading is stored twice. One with only
/// `rpc_ntf` is read from its NotifyStatus. (Replicas that split a device's messages through a
/// shared subscription each decide on what they see.)
pub struct ShellyStatus {
    /// When each device last published on `status/switch:N`.
    status_topics: IdleMap<DeviceId, chrono::DateTime<chrono::Utc>>,
}

impl Default for ShellyStatus {
    fn default() -> Self {
        Self {
            status_topics: IdleMap::new(super::idle::DEVICE_STATE_CAPACITY),
        }
    }
}

impl ShellyStatus {
    /// How long a device that published on `status/switch:N` is read from there only.
    const REMEMBERED: chrono::TimeDelta = chrono::TimeDelta::hours(1);

    /// `message`, decoded from `topic` at `now`, or [`Message::Ignored`] for a NotifyStatus
    /// whose switch statuses the device also publishes on their own topics.
    pub fn filter(
        &mut self,
        topic: &str,
        message: crate::domain::Message,
        now: chrono::DateTime<chrono::Utc>,
    ) -> crate::domain::Message {
        use crate::domain::Message;
        let Message::Shelly { device_id, .. } = &message else {
            return message;
        };
        let kind = topic.rsplit('/').next().unwrap_or_default();
        if kind.starts_with("switch:") {
            self.status_topics.insert(device_id.clone(), now);
            return message;
        }
        let on_status_topics = self
            .status_topics
            .get(device_id)
            .is_some_and(|seen| now - *seen < Self::REMEMBERED);
        match kind == "rpc" && on_status_topics {
            true => Message::Ignored,
            false => message,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_shelly_publishing_both_notifications_is_read_from_its_status_topics_only() {
        use crate::domain::Message;
        let decoder =
            Decoder::from_settings(&crate::configuration::Settings::load(None).unwrap().mqtt);
        let now = chrono::Utc::now();
        let status = serde_json::json!({"id": 0, "output": true, "apower": 12.5});
        let notify = serde_json::json!({"src": "shellyplus1pm-a", "method": "NotifyStatus",
            "params": {"ts": 1_700_000_000.5, "switch:0": {"id": 0, "apower": 12.5}}});
        let decode = |topic: &str, payload: &serde_json::Value| {
            decoder
                .decode(topic, payload.to_string().as_bytes(), now)
                .unwrap()
        };
        let mut filter = ShellyStatus::default();
        // Only rpc_ntf: its NotifyStatus is its readings.
        let only_rpc = filter.filter(
            "shellyplus1pm-b/events/rpc",
            decode("shellyplus1pm-b/events/rpc", &notify),
            now,
        );
        assert!(matches!(only_rpc, Message::Shelly { .. }));
        // Both: the status topic is read, the NotifyStatus dropped.
        let full = filter.filter(
            "shellyplus1pm-a/status/switch:0",
            decode("shellyplus1pm-a/status/switch:0", &status),
            now,
        );
        assert!(matches!(full, Message::Shelly { .. }));
        let again = filter.filter(
            "shellyplus1pm-a/events/rpc",
            decode("shellyplus1pm-a/events/rpc", &notify),
            now,
        );
        assert!(matches!(again, Message::Ignored));
        // An hour without its status topics: the NotifyStatus counts again.
        let later = now + chrono::TimeDelta::hours(2);
        let back = filter.filter(
            "shellyplus1pm-a/events/rpc",
            decode("shellyplus1pm-a/events/rpc", &notify),
            later,
        );
        assert!(matches!(back, Message::Shelly { .. }));
    }

    use super::*;

    #[test]
    fn redeliveries_remember_the_most_recent_messages_only() {
        let mut r = Redeliveries::default();
        let first = Redeliveries::fingerprint("iot/a/telemetry", b"{}");
        r.remember(first);
        assert!(r.contains(first));
        assert!(!r.contains(Redeliveries::fingerprint("iot/b/telemetry", b"{}")));
        for i in 0..Redeliveries::CAPACITY as u64 {
            r.remember(Redeliveries::fingerprint("t", &i.to_le_bytes()));
        }
        assert!(!r.contains(first), "evicted after CAPACITY newer messages");
    }

    #[test]
    fn dedupe_drops_repeats_accepts_late_ones_and_restarts() {
        let d = DeviceId::parse("m").unwrap();
        let mut dedupe = Dedupe::default();
        let accepted: Vec<bool> = [1, 2, 2, 4, 3, 3, 4, 5, 0, 0, 1]
            .iter()
            .map(|s| dedupe.accept(&d, *s))
            .collect();
        assert_eq!(
            accepted,
            [true, true, false, true, true, false, false, true, true, false, true]
        );
        assert!(dedupe.accept(&d, 1000));
        assert!(dedupe.accept(&d, 10), "far below the window: a restart");
    }
}
