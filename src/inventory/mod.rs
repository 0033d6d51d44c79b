//! What is on the home network: the device metadata file ([`metadata`]) keyed by MAC address
//! ([`mac`]), joined by the inventory with what the router reports (`sources/mikrotik.rs`).

pub mod mac;
pub mod metadata;

pub use mac::Mac;
pub use metadata::{DeviceMetadata, Metadata, MetadataError, MetadataFile};
pub mod snapshots;
