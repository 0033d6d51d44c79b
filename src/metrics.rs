//! devicehub's own numbers: counters the pipeline and the sinks keep, shown by `GET /metrics`
//! (Prometheus/OpenMetrics text, encoded by prometheus-client) and, for ingest, by the `ingest`
//! part of `GET /api/stats`. One [`Metrics`] per application, so that test apps in one process
//! never share counters.

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::RejectKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabel {
    layer: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LayerLabel {
    layer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabel {
    source: &'static str,
    outcome: &'static str,
}

/// Every counter and gauge devicehub exports, registered once.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub received: Counter,
    pub accepted: Counter,
    pub duplicates: Counter,
    dead_letters: Family<ReasonLabel, Counter>,
    pub points_written: Counter,
    pub influx_errors: Counter,
    pub archive_objects: Counter,
    pub archive_errors: Counter,
    pub journal_bytes: Gauge,
    task_restarts: Family<TaskLabel, Counter>,
    quarantined: Family<SinkLabel, Counter>,
    misconfigured: Family<SinkLabel, Gauge>,
    /// Sinks whose store refuses them for a reason of configuration (credentials, a missing
    /// bucket or database), with the store's answer: `/readyz` names them.
    failing: std::sync::Mutex<BTreeMap<&'static str, String>>,
    devices: Family<StatusLabel, Gauge>,
    devices_online: Gauge,
    alerts_open: Gauge,
    polls: Family<PollLabel, Counter>,
    analytics_runs: Family<RunLabel, Counter>,
    analytics_success: Family<LayerLabel, Gauge>,
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

/// The fleet figures `GET /metrics` reads from the registry at each scrape.
pub struct Fleet<'a> {
    pub by_status: &'a [(String, i64)],
    pub online: i64,
    pub open_alerts: i64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("devicehub"),
            received: Counter::default(),
            accepted: Counter::default(),
            duplicates: Counter::default(),
            dead_letters: Family::default(),
            points_written: Counter::default(),
            influx_errors: Counter::default(),
            archive_objects: Counter::default(),
            archive_errors: Counter::default(),
            journal_bytes: Gauge::default(),
            task_restarts: Family::default(),
            quarantined: Family::default(),
            misconfigured: Family::default(),
            failing: Default::default(),
            devices: Family::default(),
            devices_online: Gauge::default(),
            alerts_open: Gauge::default(),
            polls: Family::default(),
            analytics_runs: Family::default(),
            analytics_success: Family::default(),
        };
        let r = &mut metrics.registry;
        r.register(
            "devices",
            "Registered devices by status",
            metrics.devices.clone(),
        );
        r.register(
            "analytics_runs",
            "Scheduled analytics runs by layer (silver, gold) and outcome (ok, failed)",
            metrics.analytics_runs.clone(),
        );
        r.register(
            "analytics_last_success_timestamp_seconds",
            "When each analytics layer last ran without error (Unix time)",
            metrics.analytics_success.clone(),
        );
        r.register(
            "devices_online",
            "Devices whose connection status is online",
            metrics.devices_online.clone(),
        );
        r.register(
            "alerts_open",
            "Alerts not yet acknowledged",
            metrics.alerts_open.clone(),
        );
        r.register(
            "mqtt_messages_received",
            "MQTT messages received by the collector",
            metrics.received.clone(),
        );
        r.register(
            "mqtt_messages_accepted",
            "MQTT messages journaled",
            metrics.accepted.clone(),
        );
        r.register(
            "mqtt_duplicates_dropped",
            "Repeated (device_id, seq) and broker redeliveries dropped",
            metrics.duplicates.clone(),
        );
        r.register(
            "mqtt_dead_letters",
            "Messages and events dead-lettered, by reason",
            metrics.dead_letters.clone(),
        );
        r.register(
            "influxdb_points_written",
            "Points written to InfluxDB",
            metrics.points_written.clone(),
        );
        r.register(
            "influxdb_write_errors",
            "Failed InfluxDB writes",
            metrics.influx_errors.clone(),
        );
        r.register(
            "archive_objects_written",
            "Raw archive and lake objects written",
            metrics.archive_objects.clone(),
        );
        r.register(
            "archive_write_errors",
            "Failed archive writes",
            metrics.archive_errors.clone(),
        );
        r.register(
            "journal_bytes",
            "Bytes in the collector's journal",
            metrics.journal_bytes.clone(),
        );
        r.register(
            "quarantined",
            "Records a store refused for good, quarantined by sink",
            metrics.quarantined.clone(),
        );
        r.register(
            "sink_misconfigured",
            "1 while a sink's store refuses it for a reason of configuration",
            metrics.misconfigured.clone(),
        );
        r.register(
            "polls",
            "HTTP polls of devices (source shelly, mikrotik, hikvision) by outcome: ok, timeout, \
             connection, status, malformed",
            metrics.polls.clone(),
        );
        r.register(
            "task_restarts",
            "Background tasks restarted after a failure or panic",
            metrics.task_restarts.clone(),
        );
        metrics
    }

    /// Counts a dead letter.
    pub fn dead_lettered(&self, kind: RejectKind) {
        self.dead_letters
            .get_or_create(&ReasonLabel {
                reason: kind.as_str(),
            })
            .inc();
    }

    pub fn quarantined(&self, sink: &'static str) {
        self.quarantined.get_or_create(&SinkLabel { sink }).inc();
    }

    /// Records that `sink` cannot write for a reason of configuration (`Some`), or can again.
    pub fn sink_misconfigured(&self, sink: &'static str, reason: Option<&str>) {
        self.misconfigured
            .get_or_create(&SinkLabel { sink })
            .set(i64::from(reason.is_some()));
        if let Ok(mut failing) = self.failing.lock() {
            match reason {
                Some(reason) => {
                    failing.insert(sink, reason.to_owned());
                }
                None => {
                    failing.remove(sink);
                }
            }
        }
    }

    /// The sinks that cannot write for a reason of configuration, with the store's answer.
    pub fn misconfigured_sinks(&self) -> BTreeMap<&'static str, String> {
        self.failing.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// Counts one poll of `source` (`ok` or why it failed).
    pub fn polled(&self, source: &'static str, outcome: &'static str) {
        self.polls
            .get_or_create(&PollLabel { source, outcome })
            .inc();
    }

    /// Polls of `source` with `outcome` so far.
    pub fn polls(&self, source: &'static str, outcome: &'static str) -> u64 {
        self.polls
            .get_or_create(&PollLabel { source, outcome })
            .get()
    }

    /// A scheduled analytics run of `layer` (`silver`, `gold`) ended with `outcome`.
    pub fn analytics_ran(&self, layer: &'static str, outcome: &'static str) {
        self.analytics_runs
            .get_or_create(&RunLabel { layer, outcome })
            .inc();
        if outcome == "ok" {
            self.analytics_success
                .get_or_create(&LayerLabel { layer })
                .set(chrono::Utc::now().timestamp());
        }
    }

    pub fn task_restarted(&self, task: &str) {
        self.task_restarts
            .get_or_create(&TaskLabel {
                task: task.to_owned(),
            })
            .inc();
    }

    pub fn ingest(&self) -> IngestStats {
        let rejected: BTreeMap<String, u64> = RejectKind::ALL
            .iter()
            .map(|kind| {
                let label = ReasonLabel {
                    reason: kind.as_str(),
                };
                (
                    kind.as_str().to_owned(),
                    self.dead_letters.get_or_create(&label).get(),
                )
            })
            .filter(|(_, count)| *count > 0)
            .collect();
        IngestStats {
            messages_received: self.received.get(),
            messages_accepted: self.accepted.get(),
            duplicates_dropped: self.duplicates.get(),
            dead_lettered: rejected.values().sum(),
            rejected,
            points_written: self.points_written.get(),
            influx_write_errors: self.influx_errors.get(),
            archive_objects_written: self.archive_objects.get(),
            archive_write_errors: self.archive_errors.get(),
            journal_bytes: self.journal_bytes.get().max(0) as u64,
        }
    }

    /// The exposition text, with the fleet gauges as of now.
    pub fn encode(&self, fleet: Option<Fleet<'_>>) -> Result<String, std::fmt::Error> {
        if let Some(fleet) = fleet {
            self.devices.clear();
            for (status, count) in fleet.by_status {
                self.devices
                    .get_or_create(&StatusLabel {
                        status: status.clone(),
                    })
                    .set(*count);
            }
            self.devices_online.set(fleet.online);
            self.alerts_open.set(fleet.open_alerts);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_keeps_the_metric_names_and_counts_by_reason() {
        let metrics = Metrics::new();
        metrics.received.inc_by(3);
        metrics.dead_lettered(RejectKind::NotJson);
        metrics.dead_lettered(RejectKind::NotJson);
        let fleet = Fleet {
            by_status: &[("active".into(), 2)],
            online: 1,
            open_alerts: 4,
        };
        let text = metrics.encode(Some(fleet)).unwrap();
        for line in [
            "devicehub_mqtt_messages_received_total 3",
            "devicehub_mqtt_dead_letters_total{reason=\"not_json\"} 2",
            "devicehub_devices{status=\"active\"} 2",
            "devicehub_devices_online 1",
            "devicehub_alerts_open 4",
            "devicehub_journal_bytes 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing from\n{text}"
            );
        }
        let ingest = metrics.ingest();
        assert_eq!(ingest.dead_lettered, 2);
        assert_eq!(ingest.rejected["not_json"], 2);
    }
}
