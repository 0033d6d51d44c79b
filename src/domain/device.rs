use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use super::text::single_line_rule;
use super::{bounded_json_object, DeviceId, Invalid, Page};

pub const MAX_TYPE_CHARS: usize = 64;
/// The longest `location`.
pub const MAX_LOCATION_CHARS: usize = 200;
pub const MAX_METADATA_BYTES: usize = 16 * 1024;

/// Administrative state of a device, set by people (its connection state is separate and set by
/// the device's own traffic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum DeviceStatus {
    Active,
    Inactive,
    Maintenance,
    /// Seen on the broker but never registered by a person.
    Unregistered,
    Decommissioned,
}

pub(crate) fn device_id_rule(raw: &str) -> Result<(), validator::ValidationError> {
    DeviceId::parse(raw)
        .map(|_| ())
        .map_err(|e| validator::ValidationError::new("device_id").with_message(e.message.into()))
}

fn metadata_rule(value: &serde_json::Value) -> Result<(), validator::ValidationError> {
    bounded_json_object("metadata", value.clone(), MAX_METADATA_BYTES)
        .map(|_| ())
        .map_err(|e| validator::ValidationError::new("metadata").with_message(e.message.into()))
}

/// `POST /api/devices` body.
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "device_id": "device-004", "device_name": "New Sensor", "device_type": "temperature",
    "location": "Building C", "status": "active", "metadata": {"sampling_rate": "5s"}
}))]
pub struct NewDevice {
    /// 1–128 characters of `[A-Za-z0-9._:-]`.
    #[validate(custom(function = "device_id_rule"))]
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$")]
    pub device_id: String,
    #[validate(length(min = 1, max = 200), custom(function = "single_line_rule"))]
    #[schema(min_length = 1, max_length = 200)]
    pub device_name: String,
    #[validate(length(min = 1, max = 64), custom(function = "single_line_rule"))]
    #[schema(max_length = 64)]
    pub device_type: Option<String>,
    #[validate(length(max = 200), custom(function = "single_line_rule"))]
    #[schema(max_length = 200)]
    pub location: Option<String>,
    /// Defaults to `active`.
    pub status: Option<DeviceStatus>,
    /// A JSON object of at most 16 KiB.
    #[validate(custom(function = "metadata_rule"))]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

impl NewDevice {
    pub fn id(&self) -> Result<DeviceId, Invalid> {
        DeviceId::parse(&self.device_id)
    }
}

/// `PUT /api/devices/{device_id}` body: only the fields present change.
#[derive(Debug, Default, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"device_name": "Updated Sensor", "location": "Building D"}))]
pub struct DevicePatch {
    #[validate(length(min = 1, max = 200), custom(function = "single_line_rule"))]
    #[schema(min_length = 1, max_length = 200)]
    pub device_name: Option<String>,
    #[validate(length(min = 1, max = 64), custom(function = "single_line_rule"))]
    #[schema(max_length = 64)]
    pub device_type: Option<String>,
    #[validate(length(max = 200), custom(function = "single_line_rule"))]
    #[schema(max_length = 200)]
    pub location: Option<String>,
    pub status: Option<DeviceStatus>,
    /// Replaces the whole metadata object.
    #[validate(custom(function = "metadata_rule"))]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

impl DevicePatch {
    pub fn is_empty(&self) -> bool {
        self.device_name.is_none()
            && self.device_type.is_none()
            && self.location.is_none()
            && self.status.is_none()
            && self.metadata.is_none()
    }
}

/// `GET /api/devices` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeviceListQuery {
    /// Only devices with this administrative status.
    pub status: Option<DeviceStatus>,
    /// Only devices of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub device_type: Option<String>,
    /// Only devices at this location.
    pub location: Option<String>,
    /// 1–1000, default 100.
    pub limit: Option<i64>,
    /// Default 0.
    pub offset: Option<i64>,
}

/// A parsed device listing filter.
#[derive(Debug, Clone)]
pub struct DeviceFilter {
    pub status: Option<DeviceStatus>,
    pub device_type: Option<String>,
    pub location: Option<String>,
    pub page: Page,
}

impl TryFrom<DeviceListQuery> for DeviceFilter {
    type Error = Invalid;

    fn try_from(q: DeviceListQuery) -> Result<Self, Invalid> {
        if let Some(t) = &q.device_type {
            if t.is_empty() || t.chars().count() > MAX_TYPE_CHARS {
                return Err(Invalid::new(
                    "type",
                    format!("must be 1 to {MAX_TYPE_CHARS} characters long"),
                ));
            }
            super::single_line("type", t)?;
        }
        if let Some(l) = &q.location {
            if l.is_empty() || l.chars().count() > MAX_LOCATION_CHARS {
                return Err(Invalid::new(
                    "location",
                    format!("must be 1 to {MAX_LOCATION_CHARS} characters long"),
                ));
            }
            super::single_line("location", l)?;
        }
        Ok(Self {
            status: q.status,
            device_type: q.device_type,
            location: q.location,
            page: Page::parse(q.limit, q.offset)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<NewDevice, String> {
        let d: NewDevice = serde_json::from_value(v).map_err(|e| e.to_string())?;
        d.validate().map_err(|e| e.to_string())?;
        Ok(d)
    }

    #[test]
    fn the_seed_example_is_accepted() {
        let d = parse(json!({
            "device_id": "device-004", "device_name": "New Sensor", "device_type": "temperature",
            "location": "Building C", "status": "active", "metadata": {"sampling_rate": "5s"}
        }))
        .unwrap();
        assert_eq!(d.id().unwrap().as_str(), "device-004");
    }

    #[test]
    fn unknown_fields_bad_ids_and_non_object_metadata_are_rejected() {
        assert!(parse(json!({"device_id": "a", "device_name": "b", "colour": "red"})).is_err());
        assert!(parse(json!({"device_id": "a/b", "device_name": "b"})).is_err());
        assert!(parse(json!({"device_id": "a", "device_name": ""})).is_err());
        assert!(parse(json!({"device_id": "a", "device_name": "b", "metadata": [1]})).is_err());
        assert!(parse(json!({"device_id": "a", "device_name": "b", "status": "on"})).is_err());
        assert!(parse(json!({"device_id": "..", "device_name": "b"})).is_err());
        assert!(
            parse(json!({"device_id": "a", "device_name": "b", "device_type": "dc\nmeter"}))
                .is_err()
        );
        assert!(parse(json!({"device_id": "a", "device_name": "b\u{0}"})).is_err());
        assert!(
            parse(json!({"device_id": "a", "device_name": "b", "metadata": {"x": "\u{0}"}}))
                .is_err()
        );
    }
}
