//! devicehub's own numbers, one group per subsystem — intake ([`IngestMetrics`]), sinks
//! ([`SinkMetrics`]), polls and MQTT connections ([`PollMetrics`], [`MqttMetrics`]), tasks and
//! analytics runs ([`TaskMetrics`], [`AnalyticsMetrics`]), API requests ([`HttpMetrics`]) and the
//! fleet ([`FleetMetrics`]) — each registered into the one prometheus-client registry and shown
//! by `GET /metrics`. A subsystem is handed its own group (a cheap clone of shared counters), so
//! nothing imports every metric to count one thing. One [`Metrics`] per application, so that
//! test apps in one process never share counters. Readiness is [`crate::health`]'s.

mod fleet;
mod http;
mod ingest;
mod runs;
mod sinks;
mod sources;

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use utoipa::ToSchema;

pub use fleet::{Fleet, FleetMetrics};
pub use http::HttpMetrics;
pub use ingest::IngestMetrics;
pub use runs::{AnalyticsMetrics, TaskMetrics};
pub use sinks::SinkMetrics;
pub use sources::{MqttMetrics, PollMetrics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// The registry and every group in it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub ingest: IngestMetrics,
    pub sinks: SinkMetrics,
    pub polls: PollMetrics,
    pub mqtt: MqttMetrics,
    pub tasks: TaskMetrics,
    pub analytics: AnalyticsMetrics,
    pub http: HttpMetrics,
    fleet: FleetMetrics,
    /// Live stream clients connected (`GET /api/stream`).
    pub stream_clients: Gauge,
}

/// `GET /api/stats` → `ingest`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestStats {
    pub messages_received: u64,
    pub messages_accepted: u64,
    pub duplicates_dropped: u64,
    pub dead_lettered: u64,
    /// Dead letters by reason (`not_json`, `wrong_type`, ...).
    pub rejected: BTreeMap<String, u64>,
    pub points_written: u64,
    pub influx_write_errors: u64,
    pub archive_objects_written: u64,
    pub archive_write_errors: u64,
    pub journal_bytes: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("devicehub");
        let build = Family::<VersionLabel, Gauge>::default();
        build
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register("build_info", "devicehub's version (always 1)", build);
        let stream_clients = Gauge::default();
        registry.register(
            "stream_clients",
            "live stream clients connected (GET /api/stream)",
            stream_clients.clone(),
        );
        let r = &mut registry;
        Self {
            ingest: IngestMetrics::registered(r),
            sinks: SinkMetrics::registered(r),
            polls: PollMetrics::registered(r),
            mqtt: MqttMetrics::registered(r),
            tasks: TaskMetrics::registered(r),
            analytics: AnalyticsMetrics::registered(r),
            http: HttpMetrics::registered(r),
            fleet: FleetMetrics::registered(r),
            stream_clients,
            registry,
        }
    }

    /// The collector's counters for `GET /api/stats`.
    pub fn ingest_stats(&self) -> IngestStats {
        let (ingest, sinks) = (&self.ingest, &self.sinks);
        let rejected = ingest.dead_letters();
        IngestStats {
            messages_received: ingest.received.get(),
            messages_accepted: ingest.accepted.get(),
            duplicates_dropped: ingest.duplicates.get(),
            dead_lettered: rejected.values().sum(),
            rejected,
            points_written: sinks.points_written.get(),
            influx_write_errors: sinks.influx_errors.get(),
            archive_objects_written: sinks.archive_objects.get(),
            archive_write_errors: sinks.archive_errors.get(),
            journal_bytes: ingest.journal_bytes.get().max(0) as u64,
        }
    }

    /// The fleet as the registry counts it now (a timer reads it, not each scrape).
    pub fn set_fleet(&self, fleet: Fleet<'_>) {
        self.fleet.set(fleet);
    }

    /// The exposition text.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        self.ingest.update_fill();
        self.sinks.read_lag();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RejectKind;

    #[test]
    fn the_text_keeps_the_metric_names_and_counts_by_reason() {
        let metrics = Metrics::new();
        metrics.ingest.received.inc_by(3);
        metrics.ingest.dead_lettered(RejectKind::NotJson);
        metrics.ingest.dead_lettered(RejectKind::NotJson);
        metrics.sinks.misconfigured("influxdb", false);
        let fleet = Fleet {
            by_status: &[("active".into(), 2)],
            online: 1,
            open_alerts: 4,
            by_connection: &[("online".into(), 1), ("offline".into(), 1)],
            open_by_severity: &[("critical".into(), 3), ("info".into(), 1)],
        };
        metrics.set_fleet(fleet);
        let text = metrics.encode().unwrap();
        for line in [
            "devicehub_mqtt_messages_received_total 3",
            "devicehub_mqtt_dead_letters_total{reason=\"not_json\"} 2",
            "devicehub_devices{status=\"active\"} 2",
            "devicehub_devices_online 1",
            "devicehub_alerts_open 4",
            "devicehub_journal_bytes 0",
            "devicehub_devices_connection{status=\"unknown\"} 0",
            "devicehub_devices_connection{status=\"offline\"} 1",
            "devicehub_alerts_open_by_severity{severity=\"critical\"} 3",
            "devicehub_alerts_open_by_severity{severity=\"warning\"} 0",
            "devicehub_sink_misconfigured{sink=\"influxdb\"} 0",
            "devicehub_mqtt_dead_letters_total{reason=\"too_large\"} 0",
            "devicehub_polls_total{source=\"shelly\",outcome=\"timeout\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from\n{text}"
            );
        }
        let ingest = metrics.ingest_stats();
        assert_eq!(ingest.dead_lettered, 2);
        assert_eq!(ingest.rejected["not_json"], 2);
    }
}
