//! Answers to commands: `iot/{id}/command/ack` and `iot/{id}/ota/status`.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{multi_line, number, optional_str, reject, required_str, single_line, truncate, Ctx};
use crate::domain::{CommandResult, DeviceId, Message, RejectKind, Rejection};

impl Ctx<'_> {
    pub(super) fn command_ack(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
        let map = self.object(value)?;
        self.same_device(&id, &map)?;
        let cmd_id = cmd_id(&map)?;
        let result = match required_str(&map, "result")? {
            "accepted" => CommandResult::Accepted,
            "rejected" => CommandResult::Rejected,
            "error" => CommandResult::Error,
            "unsupported" => CommandResult::Unsupported,
            other => {
                return Err(reject(
                    RejectKind::WrongShape,
                    format!(
                        "result must be accepted, rejected, error or unsupported, got {other:?}"
                    ),
                ))
            }
        };
        let detail = optional_str(&map, "detail")?;
        if let Some(detail) = detail {
            multi_line("detail", detail)?;
        }
        let detail = detail.map(|d| truncate(d, 1000));
        Ok(Message::CommandAck {
            device_id: id,
            cmd_id,
            result,
            detail,
        })
    }

    pub(super) fn ota_status(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
        let map = self.object(value)?;
        self.same_device(&id, &map)?;
        let cmd_id = cmd_id(&map)?;
        let state = required_str(&map, "ota_state")?;
        single_line("ota_state", state)?;
        if state.is_empty() || state.len() > 32 {
            return Err(reject(
                RejectKind::InvalidName,
                "ota_state must be 1 to 32 characters",
            ));
        }
        let progress_pct = match map.get("progress_pct") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let p = number(v, "progress_pct")?;
                if !(0.0..=100.0).contains(&p) {
                    return Err(reject(
                        RejectKind::WrongShape,
                        format!("progress_pct {p} is not 0 to 100"),
                    ));
                }
                Some(p.round() as u8)
            }
        };
        Ok(Message::OtaStatus {
            device_id: id,
            cmd_id,
            state: state.to_owned(),
            progress_pct,
        })
    }
}

fn cmd_id(map: &Map<String, Value>) -> Result<Uuid, Rejection> {
    let raw = required_str(map, "cmd_id")?;
    Uuid::parse_str(raw).map_err(|_| {
        reject(
            RejectKind::WrongType,
            format!("cmd_id {raw:?} is not a UUID"),
        )
    })
}
