//! Domain types, parsed once at the edge: a value of one of these types is valid by construction,
//! so handlers and storage never re-check. Also the pipeline's nouns (messages, readings,
//! rejections), which every stage from decoding to the sinks speaks.

mod alert;
pub mod command;
pub(crate) mod config_key;
mod device;
mod device_id;
mod mac;
mod message;
mod metric;
mod page;
mod rejection;
mod role;
mod text;
mod time_range;

pub use alert::{AlertQuery, NewAlert, Severity};
pub use command::{command_payload, CommandName, CommandRequest, NewCommand};
pub use config_key::ConfigKey;
pub use device::{
    DeviceFilter, DeviceListQuery, DevicePatch, DeviceStatus, NewDevice,
    MAX_TYPE_CHARS as MAX_DEVICE_TYPE_CHARS,
};
pub use device_id::DeviceId;
pub use mac::Mac;
pub use message::{CommandResult, EventRejection, Message, QsEvent, Reading};
pub use metric::{MetricName, Unit};
pub use page::{Listing, Page};
pub use rejection::{RejectKind, Rejection};
pub use role::Role;
pub use text::{
    bounded_json_object, bounded_json_value, multi_line, single_line, single_line_rule,
    storable_json,
};
pub use time_range::{Aggregate, Downsample, TimeBound, TimeRange};

/// Why a value was refused; the API turns it into a 422 (or 400 for paths and queries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}
