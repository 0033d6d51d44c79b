//! The fleet as the registry counts it, read from PostgreSQL at each scrape: devices by status
//! and connection, open alerts by severity.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SeverityLabel {
    severity: String,
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

#[derive(Clone, Debug, Default)]
pub struct FleetMetrics {
    devices: Family<StatusLabel, Gauge>,
    online: Gauge,
    connections: Family<StatusLabel, Gauge>,
    alerts_open: Gauge,
    alerts_by_severity: Family<SeverityLabel, Gauge>,
}

impl FleetMetrics {
    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register("devices", "Registered devices by status", m.devices.clone());
        r.register(
            "devices_online",
            "Devices whose connection status is online",
            m.online.clone(),
        );
        r.register(
            "devices_connection",
            "Devices by connection status: online, offline, unknown",
            m.connections.clone(),
        );
        r.register(
            "alerts_open",
            "Alerts not yet acknowledged",
            m.alerts_open.clone(),
        );
        r.register(
            "alerts_open_by_severity",
            "Alerts not yet acknowledged, by severity",
            m.alerts_by_severity.clone(),
        );
        m
    }

    pub(super) fn set(&self, fleet: Fleet<'_>) {
        self.devices.clear();
        for (status, count) in fleet.by_status {
            self.devices
                .get_or_create(&StatusLabel {
                    status: status.clone(),
                })
                .set(*count);
        }
        self.online.set(fleet.online);
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
