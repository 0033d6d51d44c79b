use std::fmt;

use super::Invalid;

/// A per-device configuration key: 1–64 characters of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigKey(String);

impl ConfigKey {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if super::text::is_token(raw, Self::MAX_LEN, b"._-") {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(
                "key",
                format!(
                    "must be 1 to {} characters of letters, digits and . _ -",
                    Self::MAX_LEN
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
