//! The middle of the data flow: `ingest/` (MQTT, pollers) → `pipeline/` (decode, dedupe,
//! enrich) → `sinks/` (InfluxDB, archive, registry).

pub mod decode;
