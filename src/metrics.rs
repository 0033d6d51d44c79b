//! devicehub's own numbers: counters the pipeline and the sinks keep, shown by `GET /metrics`
//! (Prometheus/OpenMetrics text, encoded by prometheus-client) and, for ingest, by the `ingest`
//! part of `GET /api/stats`. One [`Metrics`] per application, so that test apps in one process
//! never share counters.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::RejectKind;
use crate::journal::{Feed, SinkPosition};

/// The sinks every collector runs, exported from the start (a sink's series exist at 0 before
/// its first failure, so rules and dashboards never see them missing).
pub const SINKS: [&str; 3] = ["influxdb", "archive", "registry"];

/// Request latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// HTTP methods kept as a label value; anything else is `other` (labels stay bounded whatever
/// clients send).
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];

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
struct ClientLabel {
    client: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabel {
    severity: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabel {
    method: &'static str,
    route: String,
    status: u16,
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
    /// Live stream clients connected (`GET /api/stream`).
    pub stream_clients: Gauge,
    task_restarts: Family<TaskLabel, Counter>,
    quarantined: Family<SinkLabel, Counter>,
    misconfigured: Family<SinkLabel, Gauge>,
    /// Sinks whose store refuses them for a reason of configuration (credentials, a missing
    /// bucket or database), with the store's answer: `/readyz` names them.
    failing: std::sync::Mutex<BTreeMap<&'static str, String>>,
    devices: Family<StatusLabel, Gauge>,
    devices_online: Gauge,
    connections: Family<StatusLabel, Gauge>,
    alerts_open: Gauge,
    alerts_by_severity: Family<SeverityLabel, Gauge>,
    polls: Family<PollLabel, Counter>,
    analytics_runs: Family<RunLabel, Counter>,
    analytics_success: Family<LayerLabel, Gauge>,
    mqtt_connected: Family<ClientLabel, Gauge>,
    journal_max_bytes: Gauge,
    journal_fill: Gauge<f64, AtomicU64>,
    sink_lag_records: Family<SinkLabel, Gauge>,
    sink_lag_seconds: Family<SinkLabel, Gauge<f64, AtomicU64>>,
    /// The feed positions the sink lag is read from at each scrape.
    sinks: Mutex<Vec<WatchedSink>>,
    http_requests: Family<RequestLabel, Counter>,
    http_latency: Family<RequestLabel, Histogram>,
}

/// A sink whose lag `/metrics` reports: its name, the journal's feed and its position in it.
struct WatchedSink(&'static str, Feed, Arc<SinkPosition>);

impl std::fmt::Debug for WatchedSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WatchedSink").field(&self.0).finish()
    }
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
    /// Devices by connection status (`online`, `offline`, `unknown`).
    pub by_connection: &'a [(String, i64)],
    /// Unacknowledged alerts by severity.
    pub open_by_severity: &'a [(String, i64)],
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
            stream_clients: Gauge::default(),
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
            connections: Family::default(),
            alerts_by_severity: Family::default(),
            mqtt_connected: Family::default(),
            journal_max_bytes: Gauge::default(),
            journal_fill: Gauge::default(),
            sink_lag_records: Family::default(),
            sink_lag_seconds: Family::default(),
            sinks: Mutex::default(),
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
        };
        for sink in SINKS {
            let label = SinkLabel { sink };
            let _ = metrics.quarantined.get_or_create(&label);
            let _ = metrics.misconfigured.get_or_create(&label);
        }
        for kind in RejectKind::ALL {
            let _ = metrics.dead_letters.get_or_create(&ReasonLabel {
                reason: kind.as_str(),
            });
        }
        for source in ["shelly", "hikvision"] {
            for outcome in ["ok", "timeout", "connection", "status", "malformed"] {
                let _ = metrics.polls.get_or_create(&PollLabel { source, outcome });
            }
        }
        let build = Family::<VersionLabel, Gauge>::default();
        build
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        let r = &mut metrics.registry;
        r.register("build_info", "devicehub's version (always 1)", build);
        r.register(
            "devices_connection",
            "Devices by connection status: online, offline, unknown",
            metrics.connections.clone(),
        );
        r.register(
            "alerts_open_by_severity",
            "Alerts not yet acknowledged, by severity",
            metrics.alerts_by_severity.clone(),
        );
        r.register(
            "mqtt_connected",
            "1 while the MQTT client (collector, publisher) is connected to the broker",
            metrics.mqtt_connected.clone(),
        );
        r.register(
            "stream_clients",
            "live stream clients connected (GET /api/stream)",
            metrics.stream_clients.clone(),
        );
        r.register(
            "journal_max_bytes",
            "collector.max_journal_bytes: the journal size at which broker acks are held",
            metrics.journal_max_bytes.clone(),
        );
        r.register(
            "journal_fill_ratio",
            "journal_bytes / journal_max_bytes (1 holds the broker's acks)",
            metrics.journal_fill.clone(),
        );
        r.register(
            "sink_lag_records",
            "Journal records a sink has not written yet",
            metrics.sink_lag_records.clone(),
        );
        r.register(
            "sink_lag_seconds",
            "Age of the oldest record a sink has read but not written (0 when caught up)",
            metrics.sink_lag_seconds.clone(),
        );
        r.register(
            "http_requests",
            "API requests by method, route (the matched pattern) and status",
            metrics.http_requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "API request latency by method, route and status",
            metrics.http_latency.clone(),
        );
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
            "When each analytics layer last ran without error (Unix time; the schedule's start \
             until the first success)",
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

    /// The MQTT client `client` (`collector`, `publisher`) connected (`true`) or lost the broker.
    pub fn mqtt_connected(&self, client: &'static str, connected: bool) {
        self.mqtt_connected
            .get_or_create(&ClientLabel { client })
            .set(i64::from(connected));
    }

    /// The journal size at which the collector holds the broker's acks.
    pub fn journal_limit(&self, max_bytes: u64) {
        self.journal_max_bytes
            .set(i64::try_from(max_bytes).unwrap_or(i64::MAX));
    }

    /// Exports `sink`'s lag behind the journal from now on.
    pub fn watch_sink(&self, sink: &'static str, feed: Feed, position: Arc<SinkPosition>) {
        if let Ok(mut sinks) = self.sinks.lock() {
            sinks.retain(|s| s.0 != sink);
            sinks.push(WatchedSink(sink, feed, position));
        }
    }

    /// Counts one answered API request. `route` is the matched pattern (`None`: no route
    /// matched), so that label values stay bounded.
    pub fn http_request(&self, method: &str, route: Option<String>, status: u16, seconds: f64) {
        let method = METHODS
            .into_iter()
            .find(|m| *m == method)
            .unwrap_or("other");
        let label = RequestLabel {
            method,
            route: route.unwrap_or_else(|| "unmatched".to_owned()),
            status,
        };
        self.http_latency.get_or_create(&label).observe(seconds);
        self.http_requests.get_or_create(&label).inc();
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
            let success = self.analytics_success.get_or_create(&LayerLabel { layer });
            if success.get() == 0 {
                success.set(chrono::Utc::now().timestamp());
            }
        }
    }

    /// Exports the restarts of `task` (0 until it first fails).
    pub fn task_started(&self, task: &str) {
        let _ = self.task_restarts.get_or_create(&TaskLabel {
            task: task.to_owned(),
        });
    }

    /// The analytics schedules start: their runs are exported, and the last success is the first
    /// start until there is one (a process just started is not an hour behind; one restarting
    /// its schedule over and over does not look fresh).
    pub fn analytics_scheduled(&self) {
        for layer in ["silver", "gold"] {
            for outcome in ["ok", "failed"] {
                let _ = self
                    .analytics_runs
                    .get_or_create(&RunLabel { layer, outcome });
            }
            let success = self.analytics_success.get_or_create(&LayerLabel { layer });
            if success.get() == 0 {
                success.set(chrono::Utc::now().timestamp());
            }
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
            set_all(
                &self.connections,
                &["online", "offline", "unknown"],
                fleet.by_connection,
                |status| StatusLabel { status },
            );
            set_all(
                &self.alerts_by_severity,
                &["info", "warning", "error", "critical"],
                fleet.open_by_severity,
                |severity| SeverityLabel { severity },
            );
        }
        let max = self.journal_max_bytes.get();
        if max > 0 {
            self.journal_fill
                .set(self.journal_bytes.get().max(0) as f64 / max as f64);
        }
        self.read_sink_lag();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    fn read_sink_lag(&self) {
        let Ok(sinks) = self.sinks.lock() else {
            return;
        };
        let now = chrono::Utc::now();
        for WatchedSink(sink, feed, position) in sinks.iter() {
            let label = SinkLabel { sink };
            let behind = feed.newest().saturating_sub(position.written());
            self.sink_lag_records
                .get_or_create(&label)
                .set(i64::try_from(behind).unwrap_or(i64::MAX));
            let seconds = position
                .oldest_pending()
                .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
            self.sink_lag_seconds.get_or_create(&label).set(seconds);
        }
    }
}

/// Sets a labelled gauge from counts, with every `known` value present (0 when absent).
fn set_all<L>(
    family: &Family<L, Gauge>,
    known: &[&str],
    counts: &[(String, i64)],
    label: impl Fn(String) -> L,
) where
    L: Clone + std::hash::Hash + Eq,
{
    family.clear();
    for value in known {
        let _ = family.get_or_create(&label((*value).to_owned()));
    }
    for (value, count) in counts {
        family.get_or_create(&label(value.clone())).set(*count);
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
            by_connection: &[("online".into(), 1), ("offline".into(), 1)],
            open_by_severity: &[("critical".into(), 3), ("info".into(), 1)],
        };
        let text = metrics.encode(Some(fleet)).unwrap();
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
            "devicehub_quarantined_total{sink=\"influxdb\"} 0",
            "devicehub_mqtt_dead_letters_total{reason=\"too_large\"} 0",
            "devicehub_polls_total{source=\"shelly\",outcome=\"timeout\"} 0",
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
