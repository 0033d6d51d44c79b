//! Scenario files (`config/simulator/*.toml`): which devices a `run` emulates, against which
//! brokers, and whether it registers them with devicehub first.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed of every random value: the same scenario and seed give the same readings.
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub mqtt: MqttSection,
    /// Register the devices through devicehub's API before they start publishing.
    pub api: Option<ApiSection>,
    #[serde(default)]
    pub meters: Vec<MeterGroup>,
    #[serde(default)]
    pub sensors: Vec<SensorGroup>,
    pub house: Option<HouseSection>,
    #[serde(default)]
    pub esp32: Vec<Esp32Group>,
    #[serde(default)]
    pub shelly: Vec<ShellyDevice>,
    #[serde(default)]
    pub camera: Vec<CameraDevice>,
    pub mikrotik: Option<MikrotikSection>,
}

fn default_seed() -> u64 {
    42
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// Every device connects to each of these (v2 meters publish each message to all of them).
    pub brokers: Vec<String>,
    pub iot_prefix: String,
    pub qs_prefix: String,
}

impl Default for MqttSection {
    fn default() -> Self {
        Self {
            brokers: vec!["mqtt://127.0.0.1:1883".into()],
            iot_prefix: "iot".into(),
            qs_prefix: "qs/v1".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    pub url: String,
    pub username: String,
    /// The password, or (better) `password_env`, the variable that holds it.
    pub password: Option<String>,
    pub password_env: Option<String>,
}

impl ApiSection {
    pub fn password(&self) -> anyhow::Result<String> {
        if let Some(var) = &self.password_env {
            return std::env::var(var)
                .map_err(|_| anyhow::anyhow!("api.password_env names {var}, which is not set"));
        }
        self.password
            .clone()
            .ok_or_else(|| anyhow::anyhow!("api needs password or password_env"))
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MeterKind {
    /// 25 kV 50 Hz AC traction meter: voltage, current, frequency, power factor, energy.
    Ac,
    /// 750 V DC traction meter: voltage, current, energy.
    Dc,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterGroup {
    /// Device ids are `{prefix}-001`, `{prefix}-002`, ...
    pub prefix: String,
    pub count: usize,
    pub kind: MeterKind,
    #[serde(default = "default_sample_ms")]
    pub sample_interval_ms: u64,
    #[serde(default = "default_send_s")]
    pub send_interval_s: u64,
    #[serde(default = "default_hello_s")]
    pub hello_interval_s: u64,
    #[serde(default = "default_fw")]
    pub fw_version: String,
    /// Chance that a datagram is lost on the way (its `seq` is skipped), for gap alerts.
    #[serde(default)]
    pub loss_probability: f64,
    #[serde(default)]
    pub location: Option<String>,
}

fn default_sample_ms() -> u64 {
    1000
}
fn default_send_s() -> u64 {
    10
}
fn default_hello_s() -> u64 {
    60
}
fn default_fw() -> String {
    "2.4.1".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorGroup {
    pub prefix: String,
    pub count: usize,
    #[serde(default = "default_send_s")]
    pub interval_s: u64,
    #[serde(default)]
    pub location: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HouseSection {
    /// The device catalog (seed 002): one row per smart-home device.
    pub catalog: PathBuf,
    #[serde(default = "default_send_s")]
    pub interval_s: u64,
    /// Chance per message that a device reports an alert (also raised through the API when the
    /// scenario has an `[api]` section).
    #[serde(default = "default_alert_p")]
    pub alert_probability: f64,
}

fn default_alert_p() -> f64 {
    0.02
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Esp32Group {
    pub prefix: String,
    pub count: usize,
    #[serde(default = "default_send_s")]
    pub interval_s: u64,
    /// An event not acknowledged within this many seconds is sent again...
    #[serde(default = "default_ack_timeout")]
    pub ack_timeout_s: u64,
    /// ...at most this many times.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    #[serde(default)]
    pub location: Option<String>,
}

fn default_ack_timeout() -> u64 {
    5
}
fn default_retries() -> u32 {
    5
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ShellyModel {
    /// Shelly Pro 4PM: four metered relays.
    Pro4pm,
    /// Shelly Pro 2PM: two metered relays.
    Pro2pm,
    /// Shelly Plus Plug S: one metered relay.
    Plug,
    /// Shelly 2.5, a Gen1 device: two metered relays, HTTP only (`/shelly`, `/status`,
    /// `/relay/N`); energy counted in watt-minutes.
    Shelly25,
}

impl ShellyModel {
    pub fn channels(self) -> u8 {
        match self {
            ShellyModel::Pro4pm => 4,
            ShellyModel::Pro2pm => 2,
            ShellyModel::Plug => 1,
            ShellyModel::Shelly25 => 2,
        }
    }

    /// 1 for the Gen1 HTTP API, 2 for RPC.
    pub fn generation(self) -> u8 {
        match self {
            ShellyModel::Shelly25 => 1,
            _ => 2,
        }
    }

    pub fn app(self) -> &'static str {
        match self {
            ShellyModel::Pro4pm => "Pro4PM",
            ShellyModel::Pro2pm => "Pro2PM",
            ShellyModel::Plug => "PlusPlugS",
            ShellyModel::Shelly25 => "Shelly25",
        }
    }

    pub fn model_code(self) -> &'static str {
        match self {
            ShellyModel::Pro4pm => "SPSW-104PE16EU",
            ShellyModel::Pro2pm => "SPSW-202PE16EU",
            ShellyModel::Plug => "SNPL-00112EU",
            ShellyModel::Shelly25 => "SHSW-25",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShellyDevice {
    /// The Shelly id, e.g. `shellypro4pm-a8032ab1c2d4` (also its MQTT topic prefix).
    pub id: String,
    pub model: ShellyModel,
    /// Where its HTTP RPC server listens. Give each Shelly its own loopback address
    /// (127.0.1.x) on one port, like real devices on a LAN.
    pub http: SocketAddr,
    #[serde(default = "default_send_s")]
    pub interval_s: u64,
    /// What each relay feeds, for plausible loads (e.g. `["heat pump", "lights"]`).
    #[serde(default)]
    pub loads: Vec<String>,
    #[serde(default)]
    pub location: Option<String>,
    /// With a password, the device asks for auth as real ones do: Gen2 digest (user `admin`,
    /// SHA-256), Gen1 basic (user `admin`). `/shelly` stays open.
    #[serde(default)]
    pub password: Option<String>,
    /// Whether a Gen2 device also pushes its status over MQTT (default true; Gen1 never does).
    #[serde(default = "default_true")]
    pub mqtt: bool,
}

fn default_true() -> bool {
    true
}

/// A HikVision camera: ISAPI over HTTP with digest auth.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraDevice {
    /// Its serial number (devicehub names it `hikvision-{serial}`, lower case).
    pub serial: String,
    #[serde(default = "default_camera_name")]
    pub name: String,
    #[serde(default = "default_camera_model")]
    pub model: String,
    pub http: SocketAddr,
    /// ISAPI digest credentials (user `admin`); `password_env` names a variable to read it from.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_env: Option<String>,
    /// Seconds between the `videoloss`/`inactive` heartbeats of the alert stream.
    #[serde(default = "default_heartbeat_s")]
    pub heartbeat_s: u64,
    /// Seconds between motion bursts (0: only on `POST /sim/motion`).
    #[serde(default)]
    pub motion_every_s: u64,
}

impl CameraDevice {
    pub fn password(&self) -> Option<String> {
        self.password_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
            .or_else(|| self.password.clone())
    }
}

fn default_camera_name() -> String {
    "Camera".into()
}

fn default_camera_model() -> String {
    "DS-2CD2143G2-I".into()
}

fn default_heartbeat_s() -> u64 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MikrotikSection {
    pub http: SocketAddr,
    pub username: String,
    pub password: Option<String>,
    pub password_env: Option<String>,
    /// Extra hosts on the LAN besides the simulated devices (phones, laptops).
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// Those of the extra hosts that are on the Wi-Fi now (the registration table).
    #[serde(default)]
    pub wifi_hosts: Vec<String>,
    /// Serve HTTPS, as RouterOS's REST API does, with a self-signed certificate kept in this
    /// PEM file (its key beside it, `.key`), made on first use. Relative to the working
    /// directory. Give devicehub the same file as `mikrotik.ca_file`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
}

impl MikrotikSection {
    pub fn password(&self) -> String {
        self.password_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
            .or_else(|| self.password.clone())
            .unwrap_or_default()
    }
}

impl Scenario {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let mut scenario: Scenario =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        // Relative paths in a scenario are relative to the scenario file.
        if let Some(house) = scenario.house.as_mut() {
            if house.catalog.is_relative() {
                if let Some(dir) = path.parent() {
                    house.catalog = dir.join(&house.catalog);
                }
            }
        }
        scenario.check()?;
        Ok(scenario)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.mqtt.brokers.is_empty(), "mqtt.brokers is empty");
        for m in &self.meters {
            anyhow::ensure!(
                m.sample_interval_ms > 0 && m.send_interval_s > 0 && m.hello_interval_s > 0,
                "meter intervals must be greater than zero"
            );
            anyhow::ensure!(
                (0.0..1.0).contains(&m.loss_probability),
                "loss_probability must be in [0, 1)"
            );
        }
        Ok(())
    }
}

/// `{prefix}-001`, ... for a group of `count`.
pub fn group_ids(prefix: &str, count: usize) -> Vec<String> {
    (1..=count).map(|i| format!("{prefix}-{i:03}")).collect()
}
