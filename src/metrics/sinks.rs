//! The sinks: what each wrote, what failed, what it quarantined, whether its store refuses it
//! for a reason of configuration, and how far it lags behind the journal.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::journal::{Feed, SinkPosition};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: &'static str,
}

/// A sink whose lag `/metrics` reports: its name, the journal's feed and its position in it.
struct WatchedSink(&'static str, Feed, Arc<SinkPosition>);

impl std::fmt::Debug for WatchedSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WatchedSink").field(&self.0).finish()
    }
}

#[derive(Clone, Debug, Default)]
pub struct SinkMetrics {
    pub points_written: Counter,
    pub influx_errors: Counter,
    pub archive_objects: Counter,
    pub archive_errors: Counter,
    quarantined: Family<SinkLabel, Counter>,
    misconfigured: Family<SinkLabel, Gauge>,
    lag_records: Family<SinkLabel, Gauge>,
    lag_seconds: Family<SinkLabel, Gauge<f64, AtomicU64>>,
    /// The feed positions the lag is read from at each scrape.
    watched: Arc<Mutex<Vec<WatchedSink>>>,
}

impl SinkMetrics {
    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            "influxdb_points_written",
            "Points written to InfluxDB",
            m.points_written.clone(),
        );
        r.register(
            "influxdb_write_errors",
            "Failed InfluxDB writes",
            m.influx_errors.clone(),
        );
        r.register(
            "archive_objects_written",
            "Raw archive and lake objects written",
            m.archive_objects.clone(),
        );
        r.register(
            "archive_write_errors",
            "Failed archive writes",
            m.archive_errors.clone(),
        );
        r.register(
            "quarantined",
            "Records a store refused for good, quarantined by sink",
            m.quarantined.clone(),
        );
        r.register(
            "sink_misconfigured",
            "1 while a sink's store refuses it for a reason of configuration",
            m.misconfigured.clone(),
        );
        r.register(
            "sink_lag_records",
            "Journal records a sink has not written yet",
            m.lag_records.clone(),
        );
        r.register(
            "sink_lag_seconds",
            "Age of the oldest record a sink has read but not written (0 when caught up)",
            m.lag_seconds.clone(),
        );
        m
    }

    /// Exports `sink`'s series from its start, at 0 before its first failure, so rules and
    /// dashboards never see them missing, and its lag behind the journal from now on.
    pub fn started(&self, sink: &'static str, feed: Feed, position: Arc<SinkPosition>) {
        let label = SinkLabel { sink };
        let _ = self.quarantined.get_or_create(&label);
        let _ = self.misconfigured.get_or_create(&label);
        if let Ok(mut watched) = self.watched.lock() {
            watched.retain(|s| s.0 != sink);
            watched.push(WatchedSink(sink, feed, position));
        }
    }

    pub fn quarantined(&self, sink: &'static str) {
        self.quarantined.get_or_create(&SinkLabel { sink }).inc();
    }

    /// `sink` cannot write for a reason of configuration (`true`), or can again.
    pub fn misconfigured(&self, sink: &'static str, misconfigured: bool) {
        self.misconfigured
            .get_or_create(&SinkLabel { sink })
            .set(i64::from(misconfigured));
    }

    /// The lag of every started sink as of now (read at each scrape).
    pub(super) fn read_lag(&self) {
        let Ok(watched) = self.watched.lock() else {
            return;
        };
        let now = chrono::Utc::now();
        for WatchedSink(sink, feed, position) in watched.iter() {
            let label = SinkLabel { sink };
            let behind = feed.newest().saturating_sub(position.written());
            self.lag_records
                .get_or_create(&label)
                .set(i64::try_from(behind).unwrap_or(i64::MAX));
            let seconds = position
                .oldest_pending()
                .map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
            self.lag_seconds.get_or_create(&label).set(seconds);
        }
    }
}
