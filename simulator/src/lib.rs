//! devicehub-sim: emulates devicehub's devices and doubles as its load generator.
//!
//! `run` emulates a home or a metering fleet from a scenario file: v2 power meters, v1 sensors,
//! seed 002 smart-house devices, `qs/v1` ESP32 event devices, Shelly Gen2 relays (MQTT and HTTP
//! RPC) and a Mikrotik router's REST API. `load` publishes v2 telemetry from N devices as fast as
//! possible or at a target rate; `drain` counts and discards, to measure what the broker alone
//! delivers; `probe` measures publish-to-queryable latency.

pub mod digest;
pub mod link;
pub mod load;
pub mod physics;
pub mod probe;
pub mod profiles;
pub mod register;
pub mod run;
pub mod scenario;
