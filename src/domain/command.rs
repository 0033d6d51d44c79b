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
}

impl CommandName {
    pub fn as_str(self) -> &'static str {
        match self {
            CommandName::UpdateConfig => "update_config",
            CommandName::StartOta => "start_ota",
            CommandName::Reboot => "reboot",
            CommandName::FactoryReset => "factory_reset",
            CommandName::RequestStatus => "request_status",
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
        Ok(Self {
            cmd: body.cmd,
            params,
        })
    }
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
