use std::fmt;

use compact_str::CompactString;

use super::Invalid;

/// A metric name: 1–64 characters of `[A-Za-z0-9_.-]`, safe as an InfluxDB tag value and in
/// InfluxQL string literals. Held inline up to 24 bytes (no allocation per reading).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricName(CompactString);

impl MetricName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if super::text::is_token(raw, Self::MAX_LEN, b"_.-") {
            Ok(Self(raw.into()))
        } else {
            Err(Invalid::new(
                "metric",
                format!(
                    "must be 1 to {} characters of letters, digits and _ . -",
                    Self::MAX_LEN
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MetricName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A unit label: up to 16 printable characters without quotes, backslashes or commas. Held
/// inline up to 24 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Unit(CompactString);

impl Unit {
    pub const MAX_LEN: usize = 16;

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok = raw.chars().count() <= Self::MAX_LEN
            && raw
                .chars()
                .all(|c| !c.is_control() && !matches!(c, '"' | '\'' | '\\' | ',' | '='));
        if ok {
            Ok(Self(raw.into()))
        } else {
            Err(Invalid::new(
                "unit",
                "must be at most 16 printable characters without quotes, backslashes, commas or =",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_are_tag_safe() {
        assert!(MetricName::parse("voltage_dc").is_ok());
        for bad in ["", "a b", "a,b", "a=b", "a\"", "ü"] {
            assert!(MetricName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Unit::parse("°C").is_ok());
        assert!(Unit::parse("a,b").is_err());
    }
}
