//! `[mqtt]`: the broker, the topic layout and what the collector does with unknown devices.

use secrecy::SecretString;
use serde::Deserialize;

use super::SettingsError;

#[derive(Debug, Clone, Deserialize)]
pub struct MqttSettings {
    pub url: SecretString,
    pub client_id: String,
    pub shared_group: String,
    pub keep_alive_secs: u64,
    pub iot_prefix: String,
    pub qs_prefix: String,
    pub deadletter_topic: String,
    pub max_payload_bytes: usize,
    pub unknown_devices: UnknownDevicePolicy,
    /// Per protocol (`iot`, `qs`, `shelly`): overrides `unknown_devices`.
    #[serde(default)]
    pub unknown_devices_by_protocol: std::collections::HashMap<String, UnknownDevicePolicy>,
    /// New devices registered per minute at most, in bursts of as many; beyond, their messages
    /// are dead-lettered (`registration_limited`).
    pub registrations_per_minute: u32,
    pub local_timezone: String,
    /// PEM file of the certificate authority that signed the broker's certificate (`mqtts://`);
    /// unset: the system's roots.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// The broker's certificate's SHA-256 fingerprint (`sha256:AB:CD:…`), pinned.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// PEM client certificate and key, for a broker with `require_certificate true`.
    #[serde(default)]
    pub client_cert_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub client_key_file: Option<std::path::PathBuf>,
}

/// The protocol families of `mqtt.unknown_devices_by_protocol`: `iot/...` (telemetry v1/v2,
/// hello, status, command answers), `qs/v1/...` events, Shelly Gen2.
pub const PROTOCOLS: [&str; 3] = ["iot", "qs", "shelly"];

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnknownDevicePolicy {
    Register,
    Reject,
}

/// The largest `mqtt.max_payload_bytes` accepted.
pub const MAX_PAYLOAD_LIMIT: usize = 16 * 1024 * 1024;

impl MqttSettings {
    pub(super) fn check(&self) -> Result<(), SettingsError> {
        if self.registrations_per_minute == 0 {
            return Err(SettingsError::Zero("mqtt.registrations_per_minute"));
        }
        if let Some(unknown) = self
            .unknown_devices_by_protocol
            .keys()
            .find(|k| !PROTOCOLS.contains(&k.as_str()))
        {
            return Err(SettingsError::Invalid(format!(
                "mqtt.unknown_devices_by_protocol: {unknown:?} is not a protocol; use {PROTOCOLS:?}"
            )));
        }
        if self.local_timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(SettingsError::Invalid(format!(
                "mqtt.local_timezone {:?} is not an IANA zone name",
                self.local_timezone
            )));
        }
        // A journal record holds one message; the journal takes records up to 64 MiB.
        if !(1..=MAX_PAYLOAD_LIMIT).contains(&self.max_payload_bytes) {
            return Err(SettingsError::Invalid(format!(
                "mqtt.max_payload_bytes must be 1 to {MAX_PAYLOAD_LIMIT}"
            )));
        }
        Ok(())
    }
}
