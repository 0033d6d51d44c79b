//! Sources: where data enters devicehub. The MQTT broker hands messages to the pipeline's
//! ingest; the Mikrotik poller keeps the router's lease and Wi-Fi snapshots in the lake (for the
//! inventory; `routeros.rs` reads RouterOS's answers). The Shelly poller hands readings to
//! ingest like MQTT.

pub mod mikrotik;
pub mod mqtt;
pub mod routeros;
pub mod shelly;
