//! The analytics models' settings (role `analytics`, and `devicehub analytics run`).

use std::path::PathBuf;

use serde::Deserialize;

use super::SettingsError;

#[derive(Debug, Clone, Deserialize)]
pub struct AnalyticsSettings {
    /// Energy price per kWh (seed 002: 0.12), in whatever currency the user thinks in.
    pub tariff_per_kwh: f64,
    /// Seconds between bronze → silver runs under the `analytics` role.
    pub silver_every_s: u64,
    /// Seconds between silver → gold runs under the `analytics` role.
    pub gold_every_s: u64,
    /// A reading received more than this many seconds after its device timestamp is late.
    pub late_after_s: u64,
    /// Power readings further apart than this are not integrated across the gap.
    pub max_gap_s: u64,
    /// Date partitions a scheduled run looks at for new bronze files (today and the days
    /// before); older late arrivals wait for `devicehub analytics run --from ... --to ...`.
    pub lookback_days: u32,
    /// Scratch space: DuckDB's spill files, the outputs before they are stored, and (lake on S3)
    /// the local copy of the lake files the models read.
    pub work_dir: PathBuf,
    /// DuckDB's memory limit; larger sorts spill to `work_dir`.
    pub memory_limit_mb: u64,
    /// DuckDB's worker threads.
    pub threads: u32,
}

impl AnalyticsSettings {
    pub(super) fn check(&self) -> Result<(), SettingsError> {
        if !self.tariff_per_kwh.is_finite() || self.tariff_per_kwh < 0.0 {
            return Err(SettingsError::Invalid(format!(
                "analytics.tariff_per_kwh must be a number of at least 0 (it is {})",
                self.tariff_per_kwh
            )));
        }
        for (name, value) in [
            ("analytics.silver_every_s", self.silver_every_s),
            ("analytics.gold_every_s", self.gold_every_s),
            ("analytics.max_gap_s", self.max_gap_s),
            ("analytics.memory_limit_mb", self.memory_limit_mb),
            ("analytics.lookback_days", u64::from(self.lookback_days)),
            ("analytics.threads", u64::from(self.threads)),
        ] {
            if value == 0 {
                return Err(SettingsError::Zero(name));
            }
        }
        Ok(())
    }
}
