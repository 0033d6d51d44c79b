//! What runs in the background: supervised tasks' restarts and the scheduled analytics runs.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: String,
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

/// The supervisor's tasks.
#[derive(Clone, Debug, Default)]
pub struct TaskMetrics {
    restarts: Family<TaskLabel, Counter>,
    /// Every task started, with its restarts, for `GET /api/system`.
    tasks: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u64>>>,
}

impl TaskMetrics {
    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            "task_restarts",
            "Background tasks restarted after a failure or panic",
            m.restarts.clone(),
        );
        m
    }

    /// Exports the restarts of `task` (0 until it first fails).
    pub fn started(&self, task: &str) {
        let _ = self.restarts.get_or_create(&TaskLabel {
            task: task.to_owned(),
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.entry(task.to_owned()).or_default();
        }
    }

    pub fn restarted(&self, task: &str) {
        if let Ok(mut tasks) = self.tasks.lock() {
            *tasks.entry(task.to_owned()).or_default() += 1;
        }
        self.restarts
            .get_or_create(&TaskLabel {
                task: task.to_owned(),
            })
            .inc();
    }
}

impl TaskMetrics {
    /// A task that is never restarted (it stops the process when it ends): listed, not counted.
    pub fn listed(&self, task: &str) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.entry(task.to_owned()).or_default();
        }
    }

    /// The tasks started in this process, by name, with their restarts.
    pub fn tasks(&self) -> Vec<(String, u64)> {
        self.tasks
            .lock()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }
}

/// The scheduled analytics runs.
#[derive(Clone, Debug, Default)]
pub struct AnalyticsMetrics {
    runs: Family<RunLabel, Counter>,
    success: Family<LayerLabel, Gauge>,
}

impl AnalyticsMetrics {
    pub(super) fn registered(r: &mut Registry) -> Self {
        let m = Self::default();
        r.register(
            "analytics_runs",
            "Scheduled analytics runs by layer (silver, gold) and outcome (ok, failed)",
            m.runs.clone(),
        );
        r.register(
            "analytics_last_success_timestamp_seconds",
            "When each analytics layer last ran without error (Unix time; the schedule's start \
             until the first success)",
            m.success.clone(),
        );
        m
    }

    /// A scheduled run of `layer` (`silver`, `gold`) ended with `outcome`.
    pub fn ran(&self, layer: &'static str, outcome: &'static str) {
        self.runs.get_or_create(&RunLabel { layer, outcome }).inc();
        if outcome == "ok" {
            self.success
                .get_or_create(&LayerLabel { layer })
                .set(chrono::Utc::now().timestamp());
        }
    }

    /// The schedules start: their runs are exported, and the last success is the first start
    /// until there is one (a process just started is not an hour behind; one restarting its
    /// schedule over and over does not look fresh).
    pub fn scheduled(&self) {
        for layer in ["silver", "gold"] {
            for outcome in ["ok", "failed"] {
                let _ = self.runs.get_or_create(&RunLabel { layer, outcome });
            }
            let success = self.success.get_or_create(&LayerLabel { layer });
            if success.get() == 0 {
                success.set(chrono::Utc::now().timestamp());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_successful_run_moves_the_last_success_not_only_the_first() {
        let m = AnalyticsMetrics::default();
        m.scheduled();
        let gold = m.success.get_or_create(&LayerLabel { layer: "gold" });
        // As if the schedule started long ago: a success now must move it.
        gold.set(1);
        m.ran("gold", "failed");
        assert_eq!(gold.get(), 1, "a failed run is no success");
        m.ran("gold", "ok");
        assert!(gold.get() >= chrono::Utc::now().timestamp() - 5);
    }
}
