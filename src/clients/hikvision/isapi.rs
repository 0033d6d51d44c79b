//! What HikVision's ISAPI answers, read from its XML whatever namespace a firmware puts on it
//! (`http://www.hikvision.com/ver20/XMLSchema`, `ver10`, `isapi.org`, or none): elements are
//! matched by local name.

use std::collections::HashMap;

use quick_xml::events::Event;
use quick_xml::Reader;

/// The text of every leaf element, by local name (the first of each name wins).
pub fn leaves(xml: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let mut fields = HashMap::new();
    let mut open: Vec<String> = Vec::new();
    let mut root_seen = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                root_seen = true;
                open.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
            }
            Ok(Event::End(_)) => {
                open.pop();
            }
            Ok(Event::Empty(_)) => root_seen = true,
            Ok(Event::Text(t)) => {
                let text = t
                    .unescape()
                    .map_err(|e| format!("XML text: {e}"))?
                    .into_owned();
                if let Some(name) = open.last() {
                    if !text.is_empty() {
                        fields.entry(name.clone()).or_insert_with(|| clean(&text));
                    }
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("not XML at byte {}: {e}", reader.buffer_position())),
        }
        buf.clear();
    }
    if !root_seen {
        return Err("no XML element".into());
    }
    if !open.is_empty() {
        return Err(format!("XML ends inside <{}>", open.join("><")));
    }
    Ok(fields)
}

/// Text from the network for logs, PostgreSQL and JSON: no control characters, bounded.
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(256).collect()
}

/// `GET /ISAPI/System/deviceInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: Option<String>,
    pub model: Option<String>,
    pub serial: String,
    pub mac: Option<String>,
    pub firmware: Option<String>,
}

pub fn device_info(xml: &[u8]) -> Result<DeviceInfo, String> {
    let mut f = leaves(xml)?;
    let serial = f
        .remove("serialNumber")
        .or_else(|| f.remove("deviceID"))
        .ok_or("deviceInfo has no serialNumber")?;
    Ok(DeviceInfo {
        name: f.remove("deviceName"),
        model: f.remove("model"),
        serial,
        mac: f.remove("macAddress"),
        firmware: f
            .remove("firmwareVersion")
            .map(|v| match f.remove("firmwareReleasedDate") {
                Some(date) => format!("{v} {date}"),
                None => v,
            }),
    })
}

/// One `EventNotificationAlert` of the alert stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// `VMD` (motion), `linedetection`, `fielddetection` (intrusion), `videoloss` (with state
    /// `inactive`: the stream's heartbeat), `tamperdetection`, ...
    pub event_type: String,
    /// `active` or `inactive`.
    pub active: bool,
    pub channel: u32,
    /// As the camera wrote it (RFC 3339, often with its local offset).
    pub date_time: Option<String>,
    pub post_count: u64,
    pub description: Option<String>,
}

impl Alert {
    /// The heartbeat a camera sends when nothing happens.
    pub fn is_heartbeat(&self) -> bool {
        self.event_type.eq_ignore_ascii_case("videoloss") && !self.active
    }

    /// devicehub's name for a detection event, or `None` for events that are not one.
    pub fn detection(&self) -> Option<&'static str> {
        match self.event_type.to_ascii_lowercase().as_str() {
            "vmd" | "motion" | "pir" => Some("motion"),
            "linedetection" => Some("line_crossing"),
            "fielddetection" | "regionentrance" | "regionexiting" => Some("intrusion"),
            _ => None,
        }
    }
}

pub fn alert(xml: &[u8]) -> Result<Alert, String> {
    let mut f = leaves(xml)?;
    let event_type = f
        .remove("eventType")
        .ok_or("EventNotificationAlert has no eventType")?;
    let state = f.remove("eventState").unwrap_or_default();
    let channel = f
        .remove("channelID")
        .or_else(|| f.remove("dynChannelID"))
        .and_then(|c| c.trim().parse().ok())
        .unwrap_or(1);
    Ok(Alert {
        event_type,
        active: state.eq_ignore_ascii_case("active"),
        channel,
        date_time: f.remove("dateTime"),
        post_count: f
            .remove("activePostCount")
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0),
        description: f.remove("eventDescription"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOTION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<EventNotificationAlert version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<ipAddress>192.168.88.40</ipAddress>
<portNo>80</portNo>
<protocol>HTTP</protocol>
<macAddress>44:19:b6:aa:bb:cc</macAddress>
<channelID>1</channelID>
<dateTime>2026-12-01T10:15:02+01:00</dateTime>
<activePostCount>3</activePostCount>
<eventType>VMD</eventType>
<eventState>active</eventState>
<eventDescription>Motion alarm</eventDescription>
<DetectionRegionList><DetectionRegionEntry><regionID>1</regionID></DetectionRegionEntry></DetectionRegionList>
</EventNotificationAlert>"#;

    #[test]
    fn a_motion_alert_reads_whatever_the_namespace() {
        let a = alert(MOTION.as_bytes()).unwrap();
        assert_eq!(a.detection(), Some("motion"));
        assert!(a.active && !a.is_heartbeat());
        assert_eq!((a.channel, a.post_count), (1, 3));
        assert_eq!(a.date_time.as_deref(), Some("2026-12-01T10:15:02+01:00"));
        let prefixed = MOTION
            .replace(
                "<EventNotificationAlert version=\"2.0\" xmlns=",
                "<hik:EventNotificationAlert version=\"2.0\" xmlns:hik=",
            )
            .replace("</EventNotificationAlert>", "</hik:EventNotificationAlert>")
            .replace("<eventType>", "<hik:eventType>")
            .replace("</eventType>", "</hik:eventType>");
        assert_eq!(alert(prefixed.as_bytes()).unwrap().event_type, "VMD");
        let old = MOTION
            .replace("channelID", "dynChannelID")
            .replace("ver20", "ver10");
        assert_eq!(alert(old.as_bytes()).unwrap().channel, 1);
    }

    #[test]
    fn the_heartbeat_is_videoloss_inactive() {
        let beat = "<EventNotificationAlert><eventType>videoloss</eventType><eventState>inactive</eventState><channelID>1</channelID><activePostCount>0</activePostCount></EventNotificationAlert>";
        let a = alert(beat.as_bytes()).unwrap();
        assert!(a.is_heartbeat());
        assert_eq!(a.detection(), None);
    }

    #[test]
    fn malformed_xml_is_an_error_not_a_panic() {
        for bad in [
            "",
            "not xml",
            "<a><b>1</b>",
            "<a></b>",
            "<EventNotificationAlert/>",
        ] {
            assert!(alert(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn device_info_registers_a_camera() {
        let xml = r#"<DeviceInfo version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">
<deviceName>Front door</deviceName><deviceID>48443030-3637-3534-3837-4419b6aabbcc</deviceID>
<model>DS-2CD2143G2-I</model><serialNumber>DS-2CD2143G2-I20230101AAWRJ12345678</serialNumber>
<macAddress>44:19:b6:aa:bb:cc</macAddress><firmwareVersion>V5.7.3</firmwareVersion>
<firmwareReleasedDate>build 220112</firmwareReleasedDate></DeviceInfo>"#;
        let info = device_info(xml.as_bytes()).unwrap();
        assert_eq!(info.serial, "DS-2CD2143G2-I20230101AAWRJ12345678");
        assert_eq!(info.model.as_deref(), Some("DS-2CD2143G2-I"));
        assert_eq!(info.firmware.as_deref(), Some("V5.7.3 build 220112"));
        assert_eq!(info.name.as_deref(), Some("Front door"));
    }
}
