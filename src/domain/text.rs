use super::Invalid;

/// Whether `raw` is 1 to `max_len` bytes, each an ASCII letter or digit or one of `extra`: the
/// shape of identifiers that go into topics, tags, keys and URL paths without escaping.
pub(crate) fn is_token(raw: &str, max_len: usize, extra: &[u8]) -> bool {
    !raw.is_empty()
        && raw.len() <= max_len
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// Text on one line: no control characters at all (names, types, identifiers). Control
/// characters break log lines, line protocol and terminals, and PostgreSQL refuses NUL.
pub fn single_line(field: &'static str, raw: &str) -> Result<(), Invalid> {
    match raw.chars().find(|c| c.is_control()) {
        None => Ok(()),
        Some(c) => Err(Invalid::new(
            field,
            format!(
                "must not contain control characters (found U+{:04X})",
                c as u32
            ),
        )),
    }
}

/// Free text: tabs and line breaks allowed, no other control characters.
pub fn multi_line(field: &'static str, raw: &str) -> Result<(), Invalid> {
    match raw
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        None => Ok(()),
        Some(c) => Err(Invalid::new(
            field,
            format!(
                "must not contain control characters other than tab and line breaks (found U+{:04X})",
                c as u32
            ),
        )),
    }
}

/// A JSON value PostgreSQL can store as `jsonb`: no NUL (`\u0000`) in any string or key.
pub fn storable_json(field: &'static str, value: &serde_json::Value) -> Result<(), Invalid> {
    fn has_nul(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().any(has_nul),
            serde_json::Value::Object(map) => {
                map.iter().any(|(k, v)| k.contains('\0') || has_nul(v))
            }
            _ => false,
        }
    }
    if has_nul(value) {
        return Err(Invalid::new(
            field,
            "must not contain NUL characters (\\u0000)",
        ));
    }
    Ok(())
}

/// [`single_line`] as a `validator` rule.
pub fn single_line_rule(raw: &str) -> Result<(), validator::ValidationError> {
    single_line("text", raw).map_err(rule_error)
}

/// [`multi_line`] as a `validator` rule.
pub(crate) fn multi_line_rule(raw: &str) -> Result<(), validator::ValidationError> {
    multi_line("text", raw).map_err(rule_error)
}

fn rule_error(e: Invalid) -> validator::ValidationError {
    validator::ValidationError::new("text").with_message(e.message.into())
}

/// Any JSON value whose serialized form is at most `max_bytes`, storable in PostgreSQL.
pub fn bounded_json_value(
    field: &'static str,
    value: serde_json::Value,
    max_bytes: usize,
) -> Result<serde_json::Value, Invalid> {
    storable_json(field, &value)?;
    let size = serde_json::to_vec(&value)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > max_bytes {
        return Err(Invalid::new(
            field,
            format!("must serialize to at most {max_bytes} bytes (got {size})"),
        ));
    }
    Ok(value)
}

/// A JSON object (not an array or scalar) of bounded serialized size.
pub fn bounded_json_object(
    field: &'static str,
    value: serde_json::Value,
    max_bytes: usize,
) -> Result<serde_json::Value, Invalid> {
    if !value.is_object() {
        return Err(Invalid::new(field, "must be a JSON object"));
    }
    bounded_json_value(field, value, max_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn control_characters_are_refused_where_they_cannot_go() {
        assert!(single_line("f", "dc meter °C").is_ok());
        for bad in ["a\nb", "a\0b", "a\rb", "\u{7f}", "a\u{85}"] {
            assert!(single_line("f", bad).is_err(), "{bad:?}");
        }
        assert!(multi_line("f", "line 1\nline 2\tx\r\n").is_ok());
        assert!(multi_line("f", "a\0b").is_err());
        assert!(multi_line("f", "a\u{1b}[31m").is_err());
        assert!(storable_json("m", &json!({"a": ["x", {"b": "y\n"}]})).is_ok());
        assert!(storable_json("m", &json!({"a": ["x", {"b": "y\u{0}"}]})).is_err());
        assert!(storable_json("m", &json!({"k\u{0}": 1})).is_err());
        assert!(bounded_json_value("v", json!("a\u{0}"), 100).is_err());
    }

    #[test]
    fn metadata_must_be_a_small_object() {
        assert!(bounded_json_object("m", json!({"a": 1}), 100).is_ok());
        assert!(bounded_json_object("m", json!([1]), 100).is_err());
        assert!(bounded_json_object("m", json!({"a": "x".repeat(200)}), 100).is_err());
    }
}
