//! RouterOS v7 REST answers, typed. RouterOS answers every value as a string
//! (`"dynamic":"true"`, `"last-seen":"1m9s"` or `"never"`, `"expires-after":"8m51s"`), leaves a
//! field out when it has no value (`host-name` when the client sent none), and names durations
//! in its own units (`1w2d3h4m5s`, `500ms`).

use std::time::Duration;

use serde_json::Value;

use crate::domain::Mac;

/// A DHCP lease (`/rest/ip/dhcp-server/lease`), with the fields the inventory keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub id: String,
    pub address: Option<String>,
    pub mac: Mac,
    pub client_id: Option<String>,
    pub host_name: Option<String>,
    /// waiting, testing, authorizing, busy, offered or bound.
    pub status: Option<String>,
    pub dynamic: bool,
    pub disabled: bool,
    pub blocked: bool,
    pub server: Option<String>,
    /// How long ago the router last heard from the host; `None`: never.
    pub last_seen: Option<Duration>,
    /// How long the lease has left; `None`: no expiry (static) or not given.
    pub expires_after: Option<Duration>,
    pub active_address: Option<String>,
    pub comment: Option<String>,
}

/// A station on the Wi-Fi (`/rest/interface/wifi/registration-table`, or the older
/// `/rest/interface/wireless/registration-table`).
#[derive(Debug, Clone, PartialEq)]
pub struct Station {
    pub mac: Mac,
    pub interface: Option<String>,
    /// dBm.
    pub signal: Option<i32>,
    pub uptime: Option<Duration>,
}

/// `1w2d3h4m5s`, `8m51s`, `500ms`, `00:05:00` → a duration; `never` and the empty string →
/// `None`, as anything unreadable.
pub fn duration(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    if raw.is_empty() || raw == "never" {
        return None;
    }
    if raw.contains(':') {
        let mut secs = 0u64;
        for part in raw.split(':') {
            secs = secs.checked_mul(60)?.checked_add(part.parse().ok()?)?;
        }
        return Some(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = raw;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 || digits > 12 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "w" => Duration::from_secs(n.checked_mul(604_800)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "s" => Duration::from_secs(n),
            "ms" => Duration::from_millis(n),
            "us" => Duration::from_micros(n),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = &rest[unit_len..];
    }
    Some(total)
}

fn text(entry: &Value, key: &str) -> Option<String> {
    entry
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        // Text from the network goes to logs, Parquet and JSON: no control characters.
        .map(|s| s.chars().filter(|c| !c.is_control()).collect())
}

fn flag(entry: &Value, key: &str) -> bool {
    matches!(
        entry.get(key),
        Some(Value::String(s)) if s == "true" || s == "yes"
    ) || entry.get(key) == Some(&Value::Bool(true))
}

fn mac(entry: &Value, keys: &[&str]) -> Option<Mac> {
    keys.iter()
        .find_map(|k| entry.get(*k).and_then(Value::as_str).and_then(Mac::parse))
}

/// The leases of an answer. Entries without a readable MAC (a lease being offered to a client
/// that gave none) are left out; an answer that is not an array is an error.
pub fn leases(answer: &Value) -> Result<Vec<Lease>, String> {
    let entries = answer
        .as_array()
        .ok_or_else(|| "the lease answer is not a JSON array".to_owned())?;
    Ok(entries
        .iter()
        .filter_map(|e| {
            Some(Lease {
                id: text(e, ".id").unwrap_or_default(),
                address: text(e, "address"),
                mac: mac(e, &["mac-address", "active-mac-address"])?,
                client_id: text(e, "client-id"),
                host_name: text(e, "host-name"),
                status: text(e, "status"),
                dynamic: flag(e, "dynamic"),
                disabled: flag(e, "disabled"),
                blocked: flag(e, "blocked"),
                server: text(e, "server"),
                last_seen: e
                    .get("last-seen")
                    .and_then(Value::as_str)
                    .and_then(duration),
                expires_after: e
                    .get("expires-after")
                    .and_then(Value::as_str)
                    .and_then(duration),
                active_address: text(e, "active-address"),
                comment: text(e, "comment"),
            })
        })
        .collect())
}

/// The stations of a registration table (the `wifi` package's or the older `wireless` one's:
/// `signal` or `signal-strength` like `-58@6Mbps`).
pub fn stations(answer: &Value) -> Result<Vec<Station>, String> {
    let entries = answer
        .as_array()
        .ok_or_else(|| "the registration table is not a JSON array".to_owned())?;
    Ok(entries
        .iter()
        .filter_map(|e| {
            let signal = ["signal", "signal-strength"]
                .iter()
                .find_map(|k| e.get(*k).and_then(Value::as_str))
                .and_then(|s| s.split('@').next())
                .and_then(|s| s.trim().parse().ok());
            Some(Station {
                mac: mac(e, &["mac-address"])?,
                interface: text(e, "interface"),
                signal,
                uptime: e.get("uptime").and_then(Value::as_str).and_then(duration),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn routeros_durations() {
        let s = Duration::from_secs;
        assert_eq!(duration("1m9s"), Some(s(69)));
        assert_eq!(duration("8m51s"), Some(s(531)));
        assert_eq!(
            duration("1w2d3h4m5s"),
            Some(s(604_800 + 2 * 86_400 + 3 * 3600 + 4 * 60 + 5))
        );
        assert_eq!(duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(duration("1s500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(duration("00:05:00"), Some(s(300)));
        for none in ["never", "", "5", "m", "5x", "-5s", "99999999999999999999s"] {
            assert_eq!(duration(none), None, "{none}");
        }
    }

    #[test]
    fn leases_as_routeros_answers_them() {
        let answer = json!([
            {".id": "*1", "address": "192.168.88.10", "mac-address": "A8:03:2A:B1:C2:D4",
             "client-id": "1:a8:3:2a:b1:c2:d4", "host-name": "shellypro4pm-a8032ab1c2d4",
             "status": "bound", "dynamic": "true", "disabled": "false", "blocked": "false",
             "server": "defconf", "last-seen": "1m9s", "expires-after": "8m51s",
             "active-address": "192.168.88.10"},
            {".id": "*2", "address": "192.168.88.20", "mac-address": "aa:bb:cc:dd:ee:ff",
             "status": "waiting", "dynamic": "false", "disabled": "true", "last-seen": "never",
             "comment": "printer\u{7}"},
            {".id": "*3", "address": "192.168.88.30", "status": "offered"},
        ]);
        let leases = leases(&answer).unwrap();
        assert_eq!(leases.len(), 2, "the entry without a MAC is left out");
        let relay = &leases[0];
        assert_eq!(relay.mac.to_string(), "A8:03:2A:B1:C2:D4");
        assert_eq!(
            relay.host_name.as_deref(),
            Some("shellypro4pm-a8032ab1c2d4")
        );
        assert!(relay.dynamic && !relay.disabled && !relay.blocked);
        assert_eq!(relay.last_seen, Some(Duration::from_secs(69)));
        assert_eq!(relay.expires_after, Some(Duration::from_secs(531)));
        let printer = &leases[1];
        assert_eq!(
            printer.host_name, None,
            "no host-name: the client sent none"
        );
        assert_eq!(printer.last_seen, None, "never");
        assert!(printer.disabled && !printer.dynamic);
        assert_eq!(printer.comment.as_deref(), Some("printer"));
        assert!(super::leases(&json!({"error": 401})).is_err());
    }

    #[test]
    fn stations_of_both_wifi_packages() {
        let wifi = json!([{"mac-address": "11:22:33:44:55:66", "interface": "wifi1", "signal": "-58", "uptime": "1h2m3s"}]);
        let wireless = json!([{"mac-address": "11:22:33:44:55:67", "interface": "wlan1", "signal-strength": "-71@6Mbps", "uptime": "5m"}]);
        let a = stations(&wifi).unwrap();
        assert_eq!(
            (a[0].signal, a[0].uptime),
            (Some(-58), Some(Duration::from_secs(3723)))
        );
        let b = stations(&wireless).unwrap();
        assert_eq!(
            (b[0].signal, b[0].interface.as_deref()),
            (Some(-71), Some("wlan1"))
        );
    }
}
