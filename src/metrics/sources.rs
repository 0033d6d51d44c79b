//! The sources: HTTP polls of devices by outcome, and whether each MQTT client is connected.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabel {
    source: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabel {
    client: &'static str,
}

/// Polls of devices over HTTP.
#[derive(Clone, Debug, Default)]
pub struct PollMetrics {
    polls: Family<PollLabel, Counter>,
}

impl PollMetrics {
    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = Self::default();
        for source in ["shelly", "hikvision"] {
            for outcome in [
                "ok",
                "timeout",
                "connection",
                "status",
                "malformed",
                "too_large",
                "refused",
            ] {
                let _ = m.polls.get_or_create(&PollLabel { source, outcome });
            }
        }
        r.register(
            "polls",
            "HTTP polls of devices (source shelly, mikrotik, hikvision) by outcome: ok, timeout, \
             connection, status, malformed, too_large (an answer over the kind's max_answer_bytes), \
             refused (not on a device network)",
            m.polls.clone(),
        );
        m
    }

    /// Counts one poll of `source` (`ok` or why it failed).
    pub fn polled(&self, source: &'static str, outcome: &'static str) {
        self.polls
            .get_or_create(&PollLabel { source, outcome })
            .inc();
    }

    /// Polls of `source` with `outcome` so far.
    pub fn count(&self, source: &'static str, outcome: &'static str) -> u64 {
        self.polls
            .get_or_create(&PollLabel { source, outcome })
            .get()
    }
}

/// The MQTT clients' connections to the broker.
#[derive(Clone, Debug, Default)]
pub struct MqttMetrics {
    connected: Family<ClientLabel, Gauge>,
}

impl MqttMetrics {
    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            "mqtt_connected",
            "1 while the MQTT client (collector, publisher) is connected to the broker",
            m.connected.clone(),
        );
        m
    }

    /// The MQTT client `client` (`collector`, `publisher`) connected (`true`) or lost the broker.
    pub fn connected(&self, client: &'static str, connected: bool) {
        self.connected
            .get_or_create(&ClientLabel { client })
            .set(i64::from(connected));
    }
}
