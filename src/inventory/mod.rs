//! What is on the home network: the device metadata file ([`metadata`]) keyed by MAC address
//! ([`mac`]), the router's poll snapshots as the lake keeps them ([`snapshots`]), and the DuckDB
//! inventory that joins the two ([`store`]); new hosts are recorded and unknown ones alerted
//! ([`hosts`]).

pub mod hosts;
pub mod mac;
pub mod metadata;
pub mod snapshots;
pub mod store;

pub use mac::Mac;
pub use metadata::{DeviceMetadata, Metadata, MetadataError, MetadataFile};
pub use store::{Host, HostFilter, HostHistory, Inventory, InventoryError};
