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

    /// Values of keys that drive timers (the liveness check and the devices' own cadence) must
    /// be numbers within bounds; other keys take any JSON.
    pub fn check_value(&self, value: &serde_json::Value) -> Result<(), Invalid> {
        check_timer(self.as_str(), value)
    }
}

/// Keys whose values are timer intervals, with their bounds.
pub(crate) const TIMERS: &[(&str, f64, f64)] = &[
    ("send_interval_s", 1.0, 86_400.0),
    ("hello_interval_s", 1.0, 604_800.0),
    ("sample_interval_ms", 10.0, 3_600_000.0),
];

/// Checks `value` when `key` is a timer interval (see [`ConfigKey::check_value`]).
pub(crate) fn check_timer(key: &str, value: &serde_json::Value) -> Result<(), Invalid> {
    let Some((_, min, max)) = TIMERS.iter().find(|(k, _, _)| *k == key) else {
        return Ok(());
    };
    match value.as_f64() {
        Some(v) if (*min..=*max).contains(&v) => Ok(()),
        _ => Err(Invalid::new(
            "value",
            format!("{key} must be a number from {min} to {max}"),
        )),
    }
}

impl fmt::Display for ConfigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn timer_values_have_bounds_and_other_keys_take_any_json() {
        let send = ConfigKey::parse("send_interval_s").unwrap();
        assert!(send.check_value(&json!(30)).is_ok());
        for bad in [json!(0), json!(-5), json!(1e12), json!("30"), json!(null)] {
            assert!(send.check_value(&bad).is_err(), "{bad}");
        }
        let other = ConfigKey::parse("colour").unwrap();
        assert!(other.check_value(&json!({"any": ["json"]})).is_ok());
    }
}
