//! The models: SQL files in `analytics/models/`, compiled into the binary and run by DuckDB in
//! dependency order. Each model file is one `SELECT` (dbt's convention); the runner decides where
//! its rows go — Parquet in the lake, or a table the next model reads.

use sha2::{Digest, Sha256};

/// A model: its name (the table or lake folder it becomes) and its query.
#[derive(Debug, Clone, Copy)]
pub struct Model {
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! model {
    ($name:literal) => {
        Model {
            name: $name,
            sql: include_str!(concat!("../../analytics/models/", $name, ".sql")),
        }
    };
}

/// The reference tables (validity ranges, energy sources): statements, not a query.
pub const REFERENCE: &str = include_str!("../../analytics/models/reference.sql");

/// Bronze → silver, one hour at a time, written to `lake/silver/readings/date=…/hour=…/`.
pub const SILVER: Model = model!("silver_readings");

/// A silver hour summed up for gold, written beside it to `lake/silver/{name}/date=…/hour=…/`
/// as the `energy_hours` and `device_hours` the gold models read.
pub const HOURLY: [(Model, &str); 2] = [
    (model!("hourly_energy"), "energy_hours"),
    (model!("hourly_device"), "device_hours"),
];

/// Silver → gold, in dependency order.
pub const GOLD: [Model; 7] = [
    model!("gold_energy_channel"),
    model!("gold_device_dims"),
    model!("energy_daily_device"),
    model!("energy_daily_location"),
    model!("energy_daily_type"),
    model!("device_health"),
    model!("daily_summary"),
];

/// The gold models written to the lake (`lake/gold/{name}/date=…/`); the others are steps.
pub const GOLD_OUTPUTS: [&str; 5] = [
    "energy_daily_device",
    "energy_daily_location",
    "energy_daily_type",
    "device_health",
    "daily_summary",
];

/// A fingerprint of every model's SQL: a change to a model makes every partition stale.
pub fn version() -> String {
    let mut hash = Sha256::new();
    hash.update(REFERENCE);
    hash.update(SILVER.sql);
    for (model, _) in HOURLY {
        hash.update(model.sql);
    }
    for model in GOLD {
        hash.update(model.name);
        hash.update(model.sql);
    }
    hex(&hash.finalize()[..8])
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_written_model_is_a_gold_model() {
        for name in GOLD_OUTPUTS {
            assert!(GOLD.iter().any(|m| m.name == name), "{name}");
        }
        assert_eq!(version(), version());
        assert_eq!(version().len(), 16);
    }
}
