//! Integration tests: the real application over HTTP against a real PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod alerts;
mod analytics;
mod archive;
mod auth;
mod broker;
mod cli;
mod collector;
mod configs;
mod devices;
mod docs;
mod errors;
mod events;
mod faults;
mod flood;
mod frontends;
mod harness;
mod health;
mod inventory;
mod mikrotik;
mod observe;
mod openapi;
mod outbox;
mod pollers;
mod stats;
mod stream;
