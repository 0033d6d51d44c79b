//! Integration tests: the real application over HTTP against a real PostgreSQL.

mod alerts;
mod analytics;
mod archive;
mod auth;
mod broker;
mod cli;
mod collector;
mod configs;
mod devices;
mod errors;
mod events;
mod faults;
mod flood;
mod frontends;
mod health;
mod helpers;
mod inventory;
mod mikrotik;
mod mqtt;
mod observe;
mod openapi;
mod pollers;
mod servers;
mod stats;
mod stream;
