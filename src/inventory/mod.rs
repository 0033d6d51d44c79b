//! What is on the home network: the device metadata file ([`metadata`]) keyed by MAC address,
//! the router's poll snapshots as the lake keeps them ([`snapshots`]), and the DuckDB
//! inventory that joins the two ([`store`], answering through [`queries`]); new hosts are recorded and unknown ones alerted
//! ([`hosts`]).

pub mod hosts;
pub mod metadata;
pub mod queries;
pub mod snapshots;
pub mod store;

pub use metadata::{DeviceMetadata, Metadata, MetadataError, MetadataFile};
pub use queries::{Host, HostFilter, HostHistory};
pub use store::{Inventory, InventoryError};
