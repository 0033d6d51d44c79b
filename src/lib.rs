//! devicehub: a device registry, telemetry collector and analytics service.
//!
//! The API half (`routes/` over `registry/`, `auth/`, `domain/`) is built by `startup.rs`; the
//! pipeline half flows `sources/` → `pipeline/` → `journal/` → `sinks/`, wired in
//! `collector.rs`. Both use the store clients in `stores/`, the device HTTP clients in
//! `clients/`, the MQTT wire protocol in `wire/` and the lake layout in `lake.rs`; every
//! background task runs under the `supervisor`.

pub mod access;
pub mod analytics;
pub mod auth;
pub mod certs;
pub mod cli;
pub mod clients;
pub mod collector;
pub mod configuration;
pub mod database;
pub mod doctor;
pub mod domain;
pub mod error;
pub mod health;
pub mod inventory;
pub mod journal;
pub mod lake;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod outbox;
pub mod pipeline;
pub mod registry;
pub mod retry;
pub mod routes;
pub mod sinks;
pub mod sources;
pub mod startup;
pub mod stores;
pub mod supervisor;
pub mod wire;
