//! Sources: where data enters devicehub and is handed to the pipeline's ingest. The MQTT broker
//! now; the HTTP pollers (Mikrotik, Shelly) will be further sources handing over the same
//! [`crate::pipeline::Incoming`] messages.

pub mod mqtt;
