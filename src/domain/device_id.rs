use std::fmt;
use std::sync::Arc;

use super::Invalid;

/// A device identifier: 1–128 characters of `[A-Za-z0-9._:-]`, not `.` or `..`: a safe path
/// segment, MQTT topic level, S3 key part, InfluxDB tag and URL path segment without escaping.
/// Shared, not copied: every reading of a message carries its device's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(Arc<str>);

impl DeviceId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(Invalid::new(
                "device_id",
                format!("must be 1 to {} characters long", Self::MAX_LEN),
            ));
        }
        if !super::text::is_token(raw, Self::MAX_LEN, b"._:-") {
            return Err(Invalid::new(
                "device_id",
                "may contain only letters, digits and . _ : -",
            ));
        }
        // An id is a folder of the archive, an MQTT topic level and a URL path segment: `.` and
        // `..` name no folder of their own.
        if raw == "." || raw == ".." {
            return Err(Invalid::new("device_id", "must not be . or .."));
        }
        Ok(Self(raw.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DeviceId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_seed_ids() {
        for id in [
            "device-001",
            "esp32-01",
            "shellypro4pm-a8032ab1c2d3",
            "meter:7.1_x",
        ] {
            assert_eq!(DeviceId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn rejects_empty_long_and_unsafe_ids() {
        let long = "a".repeat(129);
        for id in [
            "",
            long.as_str(),
            "a/b",
            "a b",
            "a+b",
            "a#",
            "é",
            "x\n",
            ".",
            "..",
        ] {
            assert!(DeviceId::parse(id).is_err(), "{id:?} accepted");
        }
        assert!(DeviceId::parse(&"a".repeat(128)).is_ok());
    }
}
