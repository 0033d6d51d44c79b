//! Sources: where data enters devicehub. The MQTT broker hands messages to the pipeline's
//! ingest; the Mikrotik poller keeps the router's lease and Wi-Fi snapshots in the lake (for the
//! inventory). The Shelly poller hands readings to ingest like MQTT, the HikVision cameras their
//! detections as events. The HTTP clients they poll with live in `clients/`.

pub mod hikvision;
pub mod mikrotik;
pub mod mqtt;
pub mod shelly;
