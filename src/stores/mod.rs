//! The clients that both the API and the pipeline use: InfluxDB (writes and InfluxQL reads), the
//! object store of the archive (a directory or S3), and the MQTT broker (connection options and
//! the publisher). Routes and sinks both import from here, never from each other.

pub mod broker;
pub mod influxdb;
pub mod objects;
