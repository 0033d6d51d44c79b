//! What Shelly devices answer, read: who a host is (Gen2 `Shelly.GetDeviceInfo`, Gen1 `/shelly`)
//! and its status as the `{id}/status/switch:N` messages a Gen2 device pushes over MQTT (Gen2
//! `Shelly.GetStatus`, Gen1 `/status` with energy converted from watt-minutes to Wh).

use serde_json::{json, Map, Value};

use crate::domain::DeviceId;

/// What a host says it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub device_id: DeviceId,
    pub generation: u8,
    pub mac: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
}

/// A text field of the device's answer, without control characters (it goes to the registry).
fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(|s| {
            s.chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
}

/// From a Gen2 `Shelly.GetDeviceInfo` answer.
pub fn gen2_identity(info: &Value) -> Result<Identity, String> {
    let id = text(info, "id").ok_or("Shelly.GetDeviceInfo has no id")?;
    Ok(Identity {
        device_id: DeviceId::parse(&id).map_err(|e| format!("device id {id:?}: {}", e.message))?,
        generation: info.get("gen").and_then(Value::as_u64).unwrap_or(2) as u8,
        mac: text(info, "mac"),
        model: text(info, "model"),
        firmware: text(info, "ver").or_else(|| text(info, "fw_id")),
    })
}

/// From a Gen1 `/shelly` answer: `shelly{type}-{mac}`, lower case, e.g. `shellyshsw-25-a8032ab1c2d4`.
pub fn gen1_identity(info: &Value) -> Result<Identity, String> {
    let kind = text(info, "type").ok_or("/shelly has no type")?;
    let mac = text(info, "mac").ok_or("/shelly has no mac")?;
    let id = format!("shelly{kind}-{mac}").to_ascii_lowercase();
    Ok(Identity {
        device_id: DeviceId::parse(&id).map_err(|e| format!("device id {id:?}: {}", e.message))?,
        generation: 1,
        mac: Some(mac),
        model: Some(kind),
        firmware: text(info, "fw"),
    })
}

/// Gen2 `Shelly.GetStatus`: every `switch:N` component, as its own MQTT status message.
pub fn gen2_messages(id: &DeviceId, status: &Value) -> Vec<(String, Vec<u8>)> {
    let Some(components) = status.as_object() else {
        return Vec::new();
    };
    components
        .iter()
        .filter(|(name, value)| name.starts_with("switch:") && value.is_object())
        .map(|(name, value)| {
            (
                format!("{id}/status/{name}"),
                value.to_string().into_bytes(),
            )
        })
        .collect()
}

/// Gen1 `/status`: `relays[].ison`, `meters[].power` and `.total` (watt-minutes), `emeters[]`
/// (`power`, `voltage`, `current`, `total` in Wh), `tmp.tC`, one channel per relay or meter,
/// written as the Gen2 switch status the decoder reads (energy in Wh).
pub fn gen1_messages(id: &DeviceId, status: &Value) -> Vec<(String, Vec<u8>)> {
    let list = |key: &str| {
        status
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let (relays, meters, emeters) = (list("relays"), list("meters"), list("emeters"));
    let temperature = status.get("tmp").and_then(|t| t.get("tC")).cloned();
    let channels = relays.len().max(meters.len()).max(emeters.len());
    (0..channels)
        .map(|i| {
            let mut channel = Map::new();
            channel.insert("id".into(), json!(i));
            if let Some(on) = relays
                .get(i)
                .and_then(|r| r.get("ison"))
                .and_then(Value::as_bool)
            {
                channel.insert("output".into(), json!(on));
            }
            if let Some(m) = meters.get(i) {
                if let Some(p) = m.get("power").filter(|p| p.is_number()) {
                    channel.insert("apower".into(), p.clone());
                }
                if let Some(total) = m.get("total").and_then(Value::as_f64) {
                    channel.insert("aenergy".into(), json!({"total": total / 60.0}));
                }
            }
            if let Some(m) = emeters.get(i) {
                for (from, to) in [
                    ("power", "apower"),
                    ("voltage", "voltage"),
                    ("current", "current"),
                ] {
                    if let Some(v) = m.get(from).filter(|v| v.is_number()) {
                        channel.insert(to.into(), v.clone());
                    }
                }
                if let Some(total) = m.get("total").filter(|v| v.is_number()) {
                    channel.insert("aenergy".into(), json!({"total": total}));
                }
            }
            if let Some(t) = temperature.clone().filter(Value::is_number) {
                channel.insert("temperature".into(), json!({"tC": t}));
            }
            (
                format!("{id}/status/switch:{i}"),
                Value::Object(channel).to_string().into_bytes(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gen2_status_gives_one_message_per_switch() {
        let id = DeviceId::parse("shellypro4pm-a8032ab1c2d4").unwrap();
        let status = json!({"sys": {"uptime": 5}, "switch:0": {"id": 0, "apower": 12.5},
                            "switch:3": {"id": 3, "output": true}, "wifi": {}});
        let messages = gen2_messages(&id, &status);
        let topics: Vec<&str> = messages.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [
                "shellypro4pm-a8032ab1c2d4/status/switch:0",
                "shellypro4pm-a8032ab1c2d4/status/switch:3"
            ]
        );
    }

    #[test]
    fn gen1_status_becomes_switch_status_with_energy_in_wh() {
        let id = DeviceId::parse("shellyshsw-25-a8032ab1c2d4").unwrap();
        let status = json!({
            "relays": [{"ison": true}, {"ison": false}],
            "meters": [{"power": 40.5, "total": 600}, {"power": 0, "total": 60}],
            "tmp": {"tC": 41.2},
        });
        let messages = gen1_messages(&id, &status);
        assert_eq!(messages.len(), 2);
        let first: Value = serde_json::from_slice(&messages[0].1).unwrap();
        assert_eq!(
            first,
            json!({"id": 0, "output": true, "apower": 40.5, "aenergy": {"total": 10.0}, "temperature": {"tC": 41.2}})
        );
        assert_eq!(messages[1].0, "shellyshsw-25-a8032ab1c2d4/status/switch:1");
        let em = json!({"emeters": [{"power": 230.0, "voltage": 231.2, "current": 1.0, "total": 1234.5}]});
        let m: Value = serde_json::from_slice(&gen1_messages(&id, &em)[0].1).unwrap();
        assert_eq!(m["aenergy"]["total"], 1234.5, "emeters count Wh already");
        assert_eq!(m["voltage"], 231.2);
    }

    #[test]
    fn identities_of_both_generations() {
        let gen2 = gen2_identity(&json!({"id": "shellyplugs-e868e7f1a2b3", "gen": 2, "mac": "E868E7F1A2B3", "model": "SNPL-00112EU", "ver": "1.4.4"})).unwrap();
        assert_eq!(
            (gen2.device_id.as_str(), gen2.generation),
            ("shellyplugs-e868e7f1a2b3", 2)
        );
        let gen1 = gen1_identity(
            &json!({"type": "SHSW-25", "mac": "A8032AB1C2D4", "fw": "20230913-112003/v1.14.0"}),
        )
        .unwrap();
        assert_eq!(
            (gen1.device_id.as_str(), gen1.generation),
            ("shellyshsw-25-a8032ab1c2d4", 1)
        );
        assert!(gen2_identity(&json!({"id": "../etc"})).is_err());
    }
}
