//! The home network's settings: the Mikrotik, Shelly and HikVision pollers and the inventory.

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

use super::SettingsError;

/// `host[:port]` entries, trimmed, empty ones (`a,,b`, a trailing comma, an unset variable in
/// docker-compose.yml) dropped: read once here, so every user of the list gets clean hosts.
fn hosts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let raw = Vec::<String>::deserialize(deserializer)?;
    Ok(raw
        .iter()
        .map(|h| h.trim())
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect())
}

/// The Mikrotik poller (role `pollers`); no `url`, no poller.
#[derive(Debug, Clone, Deserialize)]
pub struct MikrotikSettings {
    /// RouterOS REST base, e.g. `https://192.168.88.1/rest`.
    #[serde(default)]
    pub url: Option<String>,
    pub username: String,
    #[serde(default)]
    pub password: Option<SecretString>,
    /// PEM: the router's own (self-signed) certificate, pinned, or the CA of its certificate.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// The router's certificate's SHA-256 fingerprint (`sha256:AB:CD:…`), pinned.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Skip certificate verification (logged as a warning).
    pub insecure: bool,
    pub interval_s: u64,
    pub timeout_ms: u64,
    /// The largest answer read from the router (a large network's lease table included).
    pub max_answer_bytes: usize,
}

/// The Shelly poller (role `pollers`, beside the collector).
#[derive(Debug, Clone, Deserialize)]
pub struct ShellySettings {
    /// `host[:port]` of each Shelly to poll (`DEVICEHUB__SHELLY__HOSTS`, comma-separated),
    /// beside those the inventory finds.
    #[serde(default, deserialize_with = "hosts")]
    pub hosts: Vec<String>,
    /// Gen1 Shellys (`host[:port]`), polled like `hosts`: the only hosts the password goes to
    /// by basic auth (in clear text on the wire), since Gen1 knows no other.
    #[serde(default, deserialize_with = "hosts")]
    pub gen1_hosts: Vec<String>,
    /// PEM: the certificates of Shellys serving HTTPS (`https://` hosts), pinned, or their CA.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// SHA-256 fingerprints of Shellys' certificates (`sha256:AB:CD:…`), pinned.
    #[serde(default, deserialize_with = "hosts")]
    pub fingerprints: Vec<String>,
    /// The port of the Shelly devices the inventory finds (by address).
    pub port: u16,
    /// Gen1 basic-auth user (Gen2 digest auth is always `admin`).
    pub username: String,
    /// The devices' shared password; none: no auth.
    #[serde(default)]
    pub password: Option<SecretString>,
    pub interval_s: u64,
    pub timeout_ms: u64,
    /// Consecutive failed polls after which a registered Shelly is marked offline.
    pub failures_before_offline: u32,
    /// The largest answer read from a Shelly; a larger one fails the poll (`too_large`).
    pub max_answer_bytes: usize,
}

/// HikVision cameras over ISAPI (role `pollers`, beside the collector).
#[derive(Debug, Clone, Deserialize)]
pub struct HikvisionSettings {
    /// `host[:port]` of each camera (`DEVICEHUB__HIKVISION__HOSTS`, comma-separated).
    #[serde(default, deserialize_with = "hosts")]
    pub hosts: Vec<String>,
    /// PEM: the cameras' own certificates (`https://` hosts), pinned, or their CA.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// SHA-256 fingerprints of the cameras' certificates, pinned.
    #[serde(default, deserialize_with = "hosts")]
    pub fingerprints: Vec<String>,
    pub username: String,
    #[serde(default)]
    pub password: Option<SecretString>,
    /// Bound on each plain request (device info, snapshot: twice this).
    pub timeout_ms: u64,
    /// Seconds without a byte on the alert stream before it is opened again.
    pub silence_s: u64,
    /// Seconds a detection alert stays the one alert of an active detection.
    pub alert_hold_s: u64,
    /// Consecutive failures after which a camera is marked offline.
    pub failures_before_offline: u32,
    /// The largest XML answer (device info) and picture read from a camera; larger fails.
    pub max_answer_bytes: usize,
    pub max_picture_bytes: usize,
}

/// Where devicehub's own connections to devices may go.
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkSettings {
    /// CIDRs of the device networks. Empty: loopback and the router's LAN (the /24 around
    /// `mikrotik.url`'s address). Configured hosts (`shelly.hosts`, `hikvision.hosts`, ...) are
    /// always allowed. A device record pointing elsewhere is refused.
    #[serde(default)]
    pub device_subnets: Vec<String>,
}

/// The inventory's inputs.
#[derive(Debug, Clone, Deserialize)]
pub struct InventorySettings {
    /// `mac_address,device_type,owner,location[,name]`.
    pub metadata_csv: std::path::PathBuf,
    /// Days of router snapshots the inventory keeps in memory for host history.
    pub history_days: u32,
}

impl NetworkSettings {
    /// `device_subnets` as networks (a bare address is its /32 or /128).
    pub fn subnets(&self) -> Result<Vec<ipnet::IpNet>, SettingsError> {
        super::networks("network.device_subnets", &self.device_subnets)
    }
}

impl MikrotikSettings {
    /// The router's URL, when a poller is configured (an empty one is none).
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref().filter(|u| !u.is_empty())
    }

    pub(super) fn check(&self) -> Result<(), SettingsError> {
        let Some(url) = self.url() else {
            return Ok(());
        };
        let parsed = url::Url::parse(url).map_err(|e| {
            SettingsError::Invalid(format!("mikrotik.url {url:?} is not a URL: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SettingsError::Invalid(format!(
                "mikrotik.url {url:?} must be https:// (or http://)"
            )));
        }
        if self.interval_s == 0 || self.timeout_ms == 0 {
            return Err(SettingsError::Zero(
                "mikrotik.interval_s and mikrotik.timeout_ms",
            ));
        }
        Ok(())
    }
}

impl ShellySettings {
    pub(super) fn check(&self) -> Result<(), SettingsError> {
        if self.interval_s == 0 || self.timeout_ms == 0 {
            return Err(SettingsError::Zero(
                "shelly.interval_s and shelly.timeout_ms",
            ));
        }
        Ok(())
    }
}
