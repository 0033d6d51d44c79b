//! `iot/{id}/hello` (firmware and health numbers) and `iot/{id}/status` (online, or the last
//! will's offline).

use serde_json::Value;

use super::{reject, required_str, single_line, Ctx};
use crate::domain::{DeviceId, Message, RejectKind, Rejection};

impl Ctx<'_> {
    pub(super) fn hello(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
        let map = self.object(value)?;
        self.same_device(&id, &map)?;
        let time = self.time(map.get("ts"), "ts")?;
        let fw_version = required_str(&map, "fw_version")?;
        single_line("fw_version", fw_version)?;
        if fw_version.is_empty() || fw_version.chars().count() > 64 {
            return Err(reject(
                RejectKind::InvalidName,
                "fw_version must be 1 to 64 characters",
            ));
        }
        let mut readings = Vec::new();
        for (field, unit) in [
            ("uptime_s", Some("s")),
            ("broker_connections", None),
            ("buf_usage_pct", Some("%")),
            ("temp_internal", Some("°C")),
        ] {
            if let Some(v) = map.get(field).filter(|v| !v.is_null()) {
                readings.push(self.reading(&id, time, field, v, unit)?);
            }
        }
        Ok(Message::Hello {
            device_id: id,
            seq: self.seq(&map)?,
            fw_version: fw_version.to_owned(),
            readings,
        })
    }

    pub(super) fn status(&self, id: DeviceId, value: Value) -> Result<Message, Rejection> {
        let map = self.object(value)?;
        self.same_device(&id, &map)?;
        let time = self.time(map.get("ts"), "ts")?;
        let said_at = map.get("ts").filter(|v| !v.is_null()).map(|_| time);
        let online = match required_str(&map, "status")? {
            "online" => true,
            "offline" => false,
            other => {
                return Err(reject(
                    RejectKind::WrongShape,
                    format!("status must be online or offline, got {other:?}"),
                ))
            }
        };
        Ok(Message::Status {
            device_id: id,
            seq: self.seq(&map)?,
            online,
            said_at,
        })
    }
}
