//! `[collector]` and the sinks' batching (`[<sink>.batch]`, `[registry]`).

use serde::Deserialize;

use super::{Settings, SettingsError};

/// How a sink batches: a batch is written once it holds `max_events` journal records or
/// `max_bytes` encoded, or `timeout_ms` after its first record, whichever comes first.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct BatchSettings {
    pub max_events: usize,
    pub max_bytes: usize,
    pub timeout_ms: u64,
}

/// The registry sink (PostgreSQL).
#[derive(Debug, Clone, Deserialize)]
pub struct RegistrySinkSettings {
    pub batch: BatchSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CollectorSettings {
    pub journal_dir: std::path::PathBuf,
    pub max_journal_bytes: u64,
    /// Journal files roll at this size; whole files are deleted once every sink is past them.
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
    pub send_interval_secs: u64,
    pub hello_interval_secs: u64,
    pub liveness_check_secs: u64,
}

/// When the journal is handed to the disk (`fsync`). Either way a record is in the OS before
/// the broker gets its acknowledgement, so it survives devicehub crashing; the policy decides
/// what survives the machine crashing.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Before the acknowledgements of each batch: nothing acknowledged is lost.
    Batch,
    /// Once a second: up to a second of acknowledged messages can be lost with the machine.
    Interval,
}

impl Settings {
    /// The collector's journal and every sink's batches.
    pub(super) fn check_collector(&self) -> Result<(), SettingsError> {
        for (name, batch) in [
            ("influxdb.batch", self.influxdb.batch),
            ("archive.batch", self.archive.batch),
            ("registry.batch", self.registry.batch),
        ] {
            if batch.max_events == 0 || batch.max_bytes == 0 {
                return Err(SettingsError::Invalid(format!(
                    "{name}.max_events and {name}.max_bytes must be greater than zero"
                )));
            }
        }
        let collector = &self.collector;
        if collector.segment_bytes < 4096 || collector.segment_bytes > collector.max_journal_bytes {
            return Err(SettingsError::Invalid(
                "collector.segment_bytes must be at least 4096 and at most \
                 collector.max_journal_bytes"
                    .into(),
            ));
        }
        Ok(())
    }
}
