//! What the API enforces, written into the OpenAPI document: utoipa describes types, and this
//! adds the rules the parsers apply (id patterns, ranges, enums, text without control
//! characters, JSON that PostgreSQL can store), the paging headers of every listing with `offset`
//! and the error statuses every operation can give (400 with parameters or a body, 401 with
//! security, 404 under a path parameter, 413/415/422 with a body: handlers list only others),
//! so that a client generated from the document — or schemathesis, which `scripts/schemathesis.sh`
//! runs in the test command — sends what the API takes and expects what it answers. The unit
//! tests below hold the patterns to the parsers.

use serde_json::{json, Map, Value};

use crate::domain::{ConfigKey, DeviceId, MetricName, Page};

/// [`DeviceId`]: 1–128 of `[A-Za-z0-9._:-]`, not `.` or `..` (written without look-ahead).
pub const DEVICE_ID: &str = r"^(?:[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,127}|\.[A-Za-z0-9_:-][A-Za-z0-9._:-]{0,126}|\.\.[A-Za-z0-9._:-]{1,126})$";
/// An archive object name or prefix below a device's folder: `[A-Za-z0-9=._/:-]`, no `.` or
/// `..` segment.
pub const OBJECT: &str = r"^(?:[A-Za-z0-9=_:-][A-Za-z0-9=._:-]*|\.[A-Za-z0-9=_:-][A-Za-z0-9=._:-]*|\.\.[A-Za-z0-9=._:-]+)?(?:/(?:[A-Za-z0-9=_:-][A-Za-z0-9=._:-]*|\.[A-Za-z0-9=_:-][A-Za-z0-9=._:-]*|\.\.[A-Za-z0-9=._:-]+)?)*$";
/// Text on one line: no control characters (Unicode Cc).
pub const SINGLE_LINE: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";
/// Free text: tab and line breaks, no other control characters.
pub const MULTI_LINE: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";
const NO_NUL: &str = r"^[^\u0000]*$";
/// A MAC address as `Mac::parse_exact` takes it: twelve hex digits, `:`, `-`, `.` or spaces
/// around and between them.
pub const MAC: &str = r"^[ :.-]*(?:[0-9A-Fa-f][ :.-]*){12}$";
const USERNAME: &str = r"^[A-Za-z0-9._@-]{1,64}$";
/// `now()`, `now`, or `-<n><unit>`; an RFC 3339 time is the other branch.
const RELATIVE_TIME: &str = r"^(?:now\(\)|now|-[0-9]{1,12}[smhdw])$";
const DURATION: &str = r"^[0-9]{1,12}[smhdw]$";

fn string(pattern: &str, min: usize, max: usize) -> Value {
    json!({"type": "string", "pattern": pattern, "minLength": min, "maxLength": max})
}

/// The schema of a path or query parameter, by its name (and, for `limit`, its operation).
fn parameter(name: &str, path: &str) -> Option<Value> {
    Some(match name {
        "device_id" => string(DEVICE_ID, 1, DeviceId::MAX_LEN),
        "key" => string(
            &format!("^[A-Za-z0-9._-]{{1,{}}}$", ConfigKey::MAX_LEN),
            1,
            ConfigKey::MAX_LEN,
        ),
        "username" => string(USERNAME, 1, 64),
        "object" => string(OBJECT, 1, 512),
        "prefix" => string(OBJECT, 0, 512),
        "metric" => string(
            &format!("^[A-Za-z0-9_.-]{{1,{}}}$", MetricName::MAX_LEN),
            1,
            MetricName::MAX_LEN,
        ),
        "type" => string(SINGLE_LINE, 1, crate::domain::MAX_DEVICE_TYPE_CHARS),
        "event_type" => string(SINGLE_LINE, 1, 128),
        "location" | "owner" => string(SINGLE_LINE, 1, super::inventory::MAX_FILTER_CHARS),
        "mac" => json!({"type": "string", "pattern": MAC}),
        "start" | "stop" => json!({"anyOf": [
            {"type": "string", "pattern": RELATIVE_TIME},
            {"type": "string", "format": "date-time"},
        ]}),
        "every" => json!({"type": "string", "pattern": DURATION}),
        "fn" => json!({"type": "string",
            "enum": ["mean", "min", "max", "sum", "count", "first", "last", "median"]}),
        "sink" => json!({"type": "string", "enum": crate::sinks::NAMES}),
        "limit" if path.ends_with("/metrics") => {
            json!({"type": "integer", "minimum": 1, "maximum": super::readings::MAX_LIMIT})
        }
        "limit" => json!({"type": "integer", "minimum": 1, "maximum": Page::MAX_LIMIT}),
        "offset" => json!({"type": "integer", "minimum": 0, "maximum": i64::MAX}),
        "id" => {
            json!({"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX})
        }
        _ => return None,
    })
}

/// Any JSON value PostgreSQL's `jsonb` can store: no NUL in a string or a key.
fn storable_json() -> Value {
    json!({"anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "number"},
        {"type": "string", "pattern": NO_NUL},
        {"type": "array", "items": {"$ref": "#/components/schemas/StorableJson"}},
        {"$ref": "#/components/schemas/StorableObject"},
    ]})
}

fn storable_object() -> Value {
    json!({"type": "object", "propertyNames": {"pattern": NO_NUL},
           "additionalProperties": {"$ref": "#/components/schemas/StorableJson"}})
}

/// Property rules of the request bodies: (schema, property, rule to merge in).
fn property_rules() -> Vec<(&'static str, &'static str, Value)> {
    let one_line = json!({"pattern": SINGLE_LINE});
    let device_id = json!({"pattern": DEVICE_ID});
    let object = json!({"$ref": "#/components/schemas/StorableObject"});
    let nullable_object =
        json!({"anyOf": [{"type": "null"}, {"$ref": "#/components/schemas/StorableObject"}]});
    let any = json!({"$ref": "#/components/schemas/StorableJson"});
    vec![
        ("NewDevice", "device_id", device_id),
        ("NewDevice", "device_name", one_line.clone()),
        (
            "NewDevice",
            "device_type",
            json!({"pattern": SINGLE_LINE, "minLength": 1}),
        ),
        ("NewDevice", "location", one_line.clone()),
        ("NewDevice", "metadata", nullable_object.clone()),
        ("DevicePatch", "device_name", one_line.clone()),
        (
            "DevicePatch",
            "device_type",
            json!({"pattern": SINGLE_LINE, "minLength": 1}),
        ),
        ("DevicePatch", "location", one_line.clone()),
        ("DevicePatch", "metadata", nullable_object.clone()),
        ("NewAlert", "alert_type", one_line.clone()),
        ("NewAlert", "message", json!({"pattern": MULTI_LINE})),
        (
            "LoginRequest",
            "username",
            json!({"pattern": SINGLE_LINE, "minLength": 1, "maxLength": 64}),
        ),
        (
            "LoginRequest",
            "password",
            json!({"minLength": 1, "maxLength": 1024}),
        ),
        ("NewCommand", "params", nullable_object),
        ("ConfigValue", "value", any.clone()),
        ("ConfigEntry", "value", any),
        ("Device", "metadata", object),
    ]
}

/// Bodies where at least one of the (nullable) fields must be given.
fn at_least_one_of() -> Vec<(&'static str, Vec<(&'static str, Value)>)> {
    let text = json!({"type": "string"});
    vec![
        (
            "DevicePatch",
            vec![
                ("device_name", text.clone()),
                ("device_type", text.clone()),
                ("location", text.clone()),
                (
                    "status",
                    json!({"$ref": "#/components/schemas/DeviceStatus"}),
                ),
                (
                    "metadata",
                    json!({"$ref": "#/components/schemas/StorableObject"}),
                ),
            ],
        ),
        (
            "UserPatch",
            vec![
                ("role", json!({"$ref": "#/components/schemas/Role"})),
                ("password", text),
            ],
        ),
    ]
}

/// `switch_set` takes its own parameters (`domain::command::switch_set`), `update_config` holds
/// its timers to the configs' bounds; the other commands take any storable object.
fn command_variants() -> Value {
    let timers: Map<String, Value> = crate::domain::config_key::TIMERS
        .iter()
        .map(|(key, min, max)| {
            (
                (*key).to_owned(),
                json!({"type": "number", "minimum": min, "maximum": max}),
            )
        })
        .collect();
    json!([
        {"properties": {"cmd": {"enum": ["start_ota", "reboot", "factory_reset", "request_status"]}}},
        {"properties": {"cmd": {"const": "update_config"},
            "params": {"anyOf": [{"type": "null"}, {"type": "object", "properties": timers}]}}},
        {"required": ["cmd", "params"], "properties": {
            "cmd": {"const": "switch_set"},
            "params": {
                "type": "object",
                "required": ["channel", "on"],
                "additionalProperties": false,
                "properties": {
                    "channel": {"type": "integer", "minimum": 0, "maximum": 15},
                    "on": {"type": "boolean"},
                    "toggle_after": {"anyOf": [
                        {"type": "null"},
                        {"type": "number", "minimum": 0.1, "maximum": 86400},
                    ]},
                },
            },
        }},
    ])
}

fn merge(target: &mut Value, rule: &Value) {
    let (Some(target), Some(rule)) = (target.as_object_mut(), rule.as_object()) else {
        return;
    };
    if rule.contains_key("$ref") || rule.contains_key("anyOf") {
        // A replacement, keeping the description.
        let description = target.remove("description");
        target.clear();
        if let Some(d) = description {
            target.insert("description".into(), d);
        }
    }
    for (k, v) in rule {
        target.insert(k.clone(), v.clone());
    }
}

/// What every paged listing (an operation with `offset`) answers besides its items.
fn paging_headers() -> Value {
    json!({
        "X-Total-Count": {"description": "How many match in all", "schema": {"type": "integer", "format": "int64"}},
        "Link": {"description": "The first, prev, next and last pages (RFC 8288)", "schema": {"type": "string"}},
    })
}

fn error_response(description: &str) -> Value {
    json!({"description": description,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}})
}

/// Adds the rules to the document utoipa generated.
pub fn apply(doc: &mut Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, operations) in paths.iter_mut() {
            let Some(operations) = operations.as_object_mut() else {
                continue;
            };
            for operation in operations.values_mut() {
                operation_rules(path, operation);
            }
        }
    }
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    schemas.insert("StorableJson".into(), storable_json());
    schemas.insert("StorableObject".into(), storable_object());
    for (schema, property, rule) in property_rules() {
        if let Some(target) = schemas
            .get_mut(schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{property}")))
        {
            merge(target, &rule);
        }
    }
    if let Some(command) = schemas.get_mut("NewCommand").and_then(Value::as_object_mut) {
        command.insert("anyOf".into(), command_variants());
    }
    for (schema, fields) in at_least_one_of() {
        if let Some(target) = schemas.get_mut(schema).and_then(Value::as_object_mut) {
            let branches: Vec<Value> = fields
                .into_iter()
                .map(|(name, rule)| json!({"required": [name], "properties": {name: rule}}))
                .collect();
            target.insert("anyOf".into(), Value::Array(branches));
        }
    }
}

fn operation_rules(path: &str, operation: &mut Value) {
    let Some(operation) = operation.as_object_mut() else {
        return;
    };
    let mut has_parameters = false;
    if let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    {
        for p in parameters.iter_mut() {
            let Some(name) = p.get("name").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            has_parameters = true;
            if let Some(schema) = parameter(&name, path) {
                p["schema"] = schema;
            }
        }
    }
    let paged = operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(|ps| {
            ps.iter()
                .any(|p| p["name"] == "offset" && p["in"] == "query")
        });
    if paged {
        if let Some(ok) = operation
            .get_mut("responses")
            .and_then(|r| r.get_mut("200"))
        {
            ok["headers"] = paging_headers();
        }
    }
    let has_body = operation.contains_key("requestBody");
    let has_security = operation.contains_key("security");
    let responses = operation
        .entry("responses")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(responses) = responses.as_object_mut() else {
        return;
    };
    let mut add = |status: &str, description: &str| {
        responses
            .entry(status)
            .or_insert_with(|| error_response(description));
    };
    if has_parameters || has_body {
        add("400", "Malformed JSON, or a bad path or query parameter");
    }
    if has_security {
        add("401", "No token, or an invalid or expired one");
    }
    if path.contains('{') {
        add("404", "No such resource");
    }
    if has_body {
        add("413", "The body is over http.max_body_bytes");
        add("415", "The body is not application/json");
        add("422", "A field breaks a rule");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, s: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(s)
    }

    #[test]
    fn the_device_id_pattern_is_the_parser() {
        let samples = [
            "a", ".", "..", "...", ".a", "..a", "a.", "meter-1", "a:b_c.d", "a/b", "a b", "é", "",
            "-", "_", ".-", "..-",
        ];
        for s in samples {
            assert_eq!(matches(DEVICE_ID, s), DeviceId::parse(s).is_ok(), "{s:?}");
        }
        let long = "a".repeat(128);
        assert!(matches(DEVICE_ID, &long));
        assert!(!matches(DEVICE_ID, &format!("{long}a")));
        assert!(matches(DEVICE_ID, &format!("..{}", "a".repeat(126))));
    }

    #[test]
    fn the_mac_pattern_is_the_parser() {
        for s in [
            "AA:BB:CC:DD:EE:FF",
            "aa-bb-cc-dd-ee-ff",
            "aabb.ccdd.eeff",
            "AABBCCDDEEFF",
            " AABBCCDDEEFF ",
            "\tAABBCCDDEEFF",
            "AABBCCDDEEF",
            "AABBCCDDEEFF0",
            "GGBBCCDDEEFF",
            "0",
            "",
        ] {
            assert_eq!(
                matches(MAC, s),
                crate::domain::Mac::parse_exact(s).is_some(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn the_object_pattern_is_the_parser() {
        for s in [
            "date=2026-01-01/x.json",
            "a/./b",
            "a/../b",
            "..",
            ".",
            "a//b",
            "/a",
            ".x/..y",
            "a b",
            "a\\b",
            "",
            "../x",
        ] {
            assert_eq!(
                matches(OBJECT, s),
                super::super::raw_data::is_safe_suffix(s),
                "{s:?}"
            );
        }
    }

    #[test]
    fn text_patterns_are_the_text_rules() {
        for s in [
            "plain",
            "tab\there",
            "line\nbreak",
            "nul\0",
            "del\u{7f}",
            "c1\u{85}",
            "é ü",
        ] {
            assert_eq!(
                matches(SINGLE_LINE, s),
                crate::domain::single_line("t", s).is_ok(),
                "{s:?}"
            );
            assert_eq!(
                matches(MULTI_LINE, s),
                crate::domain::multi_line("t", s).is_ok(),
                "{s:?}"
            );
        }
    }
}
