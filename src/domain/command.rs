//! Commands to devices: what an operator may send, and the wire form devices read on
//! `iot/{device_id}/command`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{bounded_json_object, Invalid};

/// Largest `params` object, serialized.
pub const MAX_PARAMS_BYTES: usize = 16 * 1024;

/// The commands devices understand.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CommandName {
    UpdateConfig,
    StartOta,
    Reboot,
    FactoryReset,
    RequestStatus,
    /// A Shelly relay: `{"channel": N, "on": bool}`, optionally `"toggle_after"` seconds.
    SwitchSet,
}

impl CommandName {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandName::UpdateConfig => "update_config",
            CommandName::StartOta => "start_ota",
            CommandName::Reboot => "reboot",
            CommandName::FactoryReset => "factory_reset",
            CommandName::RequestStatus => "request_status",
            CommandName::SwitchSet => "switch_set",
        }
    }
}

/// `POST /api/devices/{device_id}/commands` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"cmd": "update_config", "params": {"send_interval_s": 10}}))]
pub struct NewCommand {
    pub cmd: CommandName,
    /// A JSON object of at most 16 KiB (default `{}`).
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
}

/// A command ready to store and send: its name and bounded parameters.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    pub cmd: CommandName,
    pub params: serde_json::Value,
}

impl TryFrom<NewCommand> for CommandRequest {
    type Error = Invalid;

    fn try_from(body: NewCommand) -> Result<Self, Invalid> {
        let params = body.params.unwrap_or_else(|| serde_json::json!({}));
        let params = bounded_json_object("params", params, MAX_PARAMS_BYTES)?;
        if body.cmd == CommandName::UpdateConfig {
            // The same bounds as the configs: a device told to send every 0 s floods the broker.
            for (key, value) in params.as_object().into_iter().flatten() {
                super::config_key::check_timer(key, value)?;
            }
        }
        if body.cmd == CommandName::SwitchSet {
            switch_set(&params)?;
        }
        Ok(Self {
            cmd: body.cmd,
            params,
        })
    }
}

/// A `switch_set` command's parameters: which relay, on or off, and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwitchSet {
    pub channel: u8,
    pub on: bool,
    pub toggle_after: Option<f64>,
}

/// Checks `{"channel": 0..=15, "on": bool, "toggle_after": 0.1..=86400 s}` (nothing else).
pub fn switch_set(params: &serde_json::Value) -> Result<SwitchSet, Invalid> {
    let bad = |m: &str| Invalid::new("params", m.to_owned());
    let map = params.as_object().ok_or_else(|| bad("must be an object"))?;
    if let Some(other) = map
        .keys()
        .find(|k| !matches!(k.as_str(), "channel" | "on" | "toggle_after"))
    {
        return Err(bad(&format!(
            "switch_set takes channel, on and toggle_after, not {other:?}"
        )));
    }
    // An integer, as JSON Schema counts them: 1 and 1.0 alike.
    let channel = map
        .get("channel")
        .and_then(serde_json::Value::as_f64)
        .filter(|c| c.fract() == 0.0 && (0.0..=15.0).contains(c))
        .map(|c| c as u64)
        .ok_or_else(|| bad("switch_set needs channel, 0 to 15"))? as u8;
    let on = map
        .get("on")
        .and_then(serde_json::Value::as_bool)
        .ok_or_else(|| bad("switch_set needs on, true or false"))?;
    let toggle_after = match map.get("toggle_after") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|s| (0.1..=86_400.0).contains(s))
                .ok_or_else(|| bad("toggle_after must be 0.1 to 86400 seconds"))?,
        ),
    };
    Ok(SwitchSet {
        channel,
        on,
        toggle_after,
    })
}

/// The wire form of a command on `iot/{device_id}/command`.
pub fn command_payload(
    cmd_id: Uuid,
    cmd: &str,
    params: &serde_json::Value,
    at: DateTime<Utc>,
) -> Vec<u8> {
    serde_json::json!({"v": 2, "cmd_id": cmd_id, "ts": at.to_rfc3339(), "cmd": cmd, "params": params})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod switch_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn switch_set_takes_a_channel_on_and_an_optional_toggle() {
        assert_eq!(
            switch_set(&json!({"channel": 1, "on": false})).unwrap(),
            SwitchSet {
                channel: 1,
                on: false,
                toggle_after: None
            }
        );
        assert_eq!(
            switch_set(&json!({"channel": 11.0, "on": true}))
                .unwrap()
                .channel,
            11
        );
        assert!(switch_set(&json!({"channel": 1.5, "on": true})).is_err());
        assert_eq!(
            switch_set(&json!({"channel": 0, "on": true, "toggle_after": 30}))
                .unwrap()
                .toggle_after,
            Some(30.0)
        );
        for bad in [
            json!({}),
            json!({"channel": 16, "on": true}),
            json!({"channel": 0, "on": "yes"}),
            json!({"channel": 0, "on": true, "toggle_after": 0}),
            json!({"channel": 0, "on": true, "colour": "red"}),
        ] {
            assert!(switch_set(&bad).is_err(), "{bad}");
        }
    }
}
