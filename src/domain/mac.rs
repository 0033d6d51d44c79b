//! MAC addresses as the inventory keys them: `AA:BB:CC:DD:EE:FF`, whatever the case or the
//! separators they were written with (`aa-bb-cc-dd-ee-ff`, `aabb.ccdd.eeff`, `AABBCCDDEEFF`).
//! homebot matched the metadata file's MACs exactly, case and all, and so missed real devices.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac([u8; 6]);

impl Mac {
    /// Twelve hex digits, with any of `:`, `-`, `.` and spaces between them.
    pub fn parse(raw: &str) -> Option<Self> {
        let mut bytes = [0u8; 6];
        let mut digits = 0usize;
        for c in raw.trim().chars() {
            if matches!(c, ':' | '-' | '.' | ' ') {
                continue;
            }
            let value = c.to_digit(16)? as u8;
            if digits >= 12 {
                return None;
            }
            bytes[digits / 2] = bytes[digits / 2] << 4 | value;
            digits += 1;
        }
        (digits == 12).then_some(Self(bytes))
    }

    /// As [`Mac::parse`], but only `:`, `-`, `.` and spaces besides the digits (no other
    /// whitespace trimmed): what the API takes in a path.
    pub fn parse_exact(raw: &str) -> Option<Self> {
        raw.chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '-' | '.' | ' '))
            .then(|| Self::parse(raw))
            .flatten()
    }

    pub fn bytes(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_common_spelling_is_the_same_mac() {
        let expected = "A8:03:2A:B1:C2:D4";
        for raw in [
            "A8:03:2A:B1:C2:D4",
            "a8:03:2a:b1:c2:d4",
            "a8-03-2a-b1-c2-d4",
            "a803.2ab1.c2d4",
            "A8032AB1C2D4",
            " a8:03:2A:b1:c2:D4 ",
        ] {
            assert_eq!(
                Mac::parse(raw).map(|m| m.to_string()).as_deref(),
                Some(expected),
                "{raw}"
            );
        }
        for bad in [
            "",
            "A8:03:2A:B1:C2",
            "A8:03:2A:B1:C2:D4:00",
            "G8:03:2A:B1:C2:D4",
            "A8_03_2A_B1_C2_D4",
        ] {
            assert_eq!(Mac::parse(bad), None, "{bad}");
        }
    }
}
