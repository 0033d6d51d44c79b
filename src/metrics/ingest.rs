//! The collector's intake: messages received, journaled, dropped as repeats and dead-lettered,
//! and the journal's size against its limit.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::domain::RejectKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Default)]
pub struct IngestMetrics {
    pub received: Counter,
    pub accepted: Counter,
    pub duplicates: Counter,
    /// Retained readings and stale retained statuses, not ingested.
    pub retained_ignored: Counter,
    dead_letters: Family<ReasonLabel, Counter>,
    pub journal_bytes: Gauge,
    journal_damaged_ranges: Counter,
    journal_damaged_records: Counter,
    journal_max_bytes: Gauge,
    journal_fill: Gauge<f64, AtomicU64>,
}

impl IngestMetrics {
    /// A damaged range of the journal, with `records` records lost in it, was passed over.
    pub fn journal_damaged(&self, records: u64) {
        self.journal_damaged_ranges.inc();
        self.journal_damaged_records.inc_by(records);
    }

    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = Self::default();
        // Every reason from the start, at 0: rules and dashboards never see a series missing.
        for kind in RejectKind::ALL {
            let _ = m.dead_letters.get_or_create(&ReasonLabel {
                reason: kind.as_str(),
            });
        }
        r.register(
            "mqtt_messages_received",
            "MQTT messages received by the collector",
            m.received.clone(),
        );
        r.register(
            "mqtt_messages_accepted",
            "MQTT messages journaled",
            m.accepted.clone(),
        );
        r.register(
            "mqtt_duplicates_dropped",
            "Repeated (device_id, seq) and broker redeliveries dropped",
            m.duplicates.clone(),
        );
        r.register(
            "mqtt_retained_ignored",
            "Retained MQTT messages not ingested: readings, and statuses older than the registry",
            m.retained_ignored.clone(),
        );
        r.register(
            "mqtt_dead_letters",
            "Messages and events dead-lettered, by reason",
            m.dead_letters.clone(),
        );
        r.register(
            "journal_bytes",
            "Bytes in the collector's journal",
            m.journal_bytes.clone(),
        );
        r.register(
            "journal_damaged_ranges",
            "Damaged ranges found in the journal's files and passed over (journal_corrupt alerts)",
            m.journal_damaged_ranges.clone(),
        );
        r.register(
            "journal_damaged_records",
            "Journaled records lost in damaged ranges of the journal's files",
            m.journal_damaged_records.clone(),
        );
        r.register(
            "journal_max_bytes",
            "collector.max_journal_bytes: the journal size at which broker acks are held",
            m.journal_max_bytes.clone(),
        );
        r.register(
            "journal_fill_ratio",
            "journal_bytes / journal_max_bytes (1 holds the broker's acks)",
            m.journal_fill.clone(),
        );
        m
    }

    /// Counts a dead letter.
    pub fn dead_lettered(&self, kind: RejectKind) {
        self.dead_letters
            .get_or_create(&ReasonLabel {
                reason: kind.as_str(),
            })
            .inc();
    }

    /// Dead letters so far by reason, the reasons seen only.
    pub fn dead_letters(&self) -> BTreeMap<String, u64> {
        RejectKind::ALL
            .iter()
            .map(|kind| {
                let label = ReasonLabel {
                    reason: kind.as_str(),
                };
                let count = self.dead_letters.get_or_create(&label).get();
                (kind.as_str().to_owned(), count)
            })
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// The journal size at which the collector holds the broker's acks.
    pub fn journal_limit(&self, max_bytes: u64) {
        self.journal_max_bytes
            .set(i64::try_from(max_bytes).unwrap_or(i64::MAX));
    }

    /// The fill ratio as of now (read at each scrape).
    pub(super) fn update_fill(&self) {
        let max = self.journal_max_bytes.get();
        if max > 0 {
            self.journal_fill
                .set(self.journal_bytes.get().max(0) as f64 / max as f64);
        }
    }
}
