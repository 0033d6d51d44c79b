//! Why a message was refused: a stable kind (for counters and dead letters) and a detail for
//! people.

/// Why a payload was refused. `kind` is a stable label for counters and dead letters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {detail}")]
pub struct Rejection {
    pub kind: RejectKind,
    pub detail: String,
}

impl Rejection {
    pub fn new(kind: RejectKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectKind {
    UnknownTopic,
    InvalidDeviceId,
    TooLarge,
    NotJson,
    WrongShape,
    WrongType,
    MissingField,
    DeviceMismatch,
    NonFiniteValue,
    TimestampOutOfRange,
    TooManyMeasurements,
    InvalidName,
    ControlCharacter,
    /// A new device beyond `mqtt.registrations_per_minute`.
    RegistrationLimited,
}

impl RejectKind {
    pub const ALL: [RejectKind; 14] = [
        RejectKind::UnknownTopic,
        RejectKind::InvalidDeviceId,
        RejectKind::TooLarge,
        RejectKind::NotJson,
        RejectKind::WrongShape,
        RejectKind::WrongType,
        RejectKind::MissingField,
        RejectKind::DeviceMismatch,
        RejectKind::NonFiniteValue,
        RejectKind::TimestampOutOfRange,
        RejectKind::TooManyMeasurements,
        RejectKind::InvalidName,
        RejectKind::ControlCharacter,
        RejectKind::RegistrationLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::UnknownTopic => "unknown_topic",
            RejectKind::InvalidDeviceId => "invalid_device_id",
            RejectKind::TooLarge => "too_large",
            RejectKind::NotJson => "not_json",
            RejectKind::WrongShape => "wrong_shape",
            RejectKind::WrongType => "wrong_type",
            RejectKind::MissingField => "missing_field",
            RejectKind::DeviceMismatch => "device_mismatch",
            RejectKind::NonFiniteValue => "non_finite_value",
            RejectKind::TimestampOutOfRange => "timestamp_out_of_range",
            RejectKind::TooManyMeasurements => "too_many_measurements",
            RejectKind::InvalidName => "invalid_name",
            RejectKind::ControlCharacter => "control_character",
            RejectKind::RegistrationLimited => "registration_limited",
        }
    }
}

impl std::fmt::Display for RejectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
