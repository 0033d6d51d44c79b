//! Sources: where data enters devicehub (the MQTT broker now; HTTP pollers later).

pub mod mqtt;
