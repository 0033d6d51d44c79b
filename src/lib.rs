//! devicehub: a device registry, telemetry collector and analytics service.

pub mod auth;
pub mod cli;
pub mod collector;
pub mod configuration;
pub mod database;
pub mod domain;
pub mod error;
pub mod ingest;
pub mod journal;
pub mod pipeline;
pub mod registry;
pub mod routes;
pub mod sinks;
pub mod startup;
pub mod telemetry;
