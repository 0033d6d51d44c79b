//! The one test harness: in-process apps over a fresh database ([`app`]), devicehub as a real
//! process ([`binary`]), the services a test controls — its own PostgreSQL, broker, InfluxDB and
//! S3 server, stopped and started at will ([`services`]) — and a device on the broker
//! ([`device`]). Test files import from here, never from each other.

pub mod app;
pub mod binary;
pub mod device;
pub mod services;

pub use app::*;
pub use binary::{binary, scratch, Service};
pub use device::Device;
