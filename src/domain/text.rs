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

/// Any JSON value whose serialized form is at most `max_bytes`.
pub fn bounded_json_value(
    field: &'static str,
    value: serde_json::Value,
    max_bytes: usize,
) -> Result<serde_json::Value, Invalid> {
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
    fn metadata_must_be_a_small_object() {
        assert!(bounded_json_object("m", json!({"a": 1}), 100).is_ok());
        assert!(bounded_json_object("m", json!([1]), 100).is_err());
        assert!(bounded_json_object("m", json!({"a": "x".repeat(200)}), 100).is_err());
    }
}
