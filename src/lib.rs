//! devicehub: a device registry, telemetry collector and analytics service.
//!
//! The API half (`routes/` over `registry/`, `auth/`, `domain/`) is built by `startup.rs`; the
//! pipeline half flows `sources/` → `pipeline/` → `journal/` → `sinks/`, wired in
//! `collector.rs`. Both use the clients in `stores/`, and every background task runs under the
//! `supervisor`.

pub mod access;
pub mod analytics;
pub mod auth;
pub mod cli;
pub mod collector;
pub mod configuration;
pub mod database;
pub mod domain;
pub mod error;
pub mod inventory;
pub mod journal;
pub mod live;
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
pub mod telemetry;
