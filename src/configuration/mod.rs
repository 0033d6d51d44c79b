//! One typed settings tree: `config/default.toml`, then an optional `--config` file, then
//! `DEVICEHUB__SECTION__KEY` environment variables. Secrets are `SecretString`s, so they never
//! appear in logs or `Debug` output.

use std::path::Path;

use serde::Deserialize;

mod analytics;
mod auth;
mod collector;
mod database;
mod examples;
mod http;
mod ignored;
mod mqtt;
mod network;
mod stores;

pub use analytics::AnalyticsSettings;
pub use auth::{AuthSettings, LogFormat, LogSettings, DEV_JWT_SECRETS, MIN_JWT_SECRET_BYTES};
pub use collector::{BatchSettings, CollectorSettings, FsyncPolicy, RegistrySinkSettings};
pub use database::DatabaseSettings;
pub use examples::{is_example, EXAMPLE_SECRETS};
pub use http::{HttpSettings, MetricsSettings, StreamSettings};
pub use mqtt::{MqttSettings, UnknownDevicePolicy, MAX_PAYLOAD_LIMIT, PROTOCOLS};
pub use network::{
    HikvisionSettings, InventorySettings, MikrotikSettings, NetworkSettings, ShellySettings,
};
pub use stores::{
    ArchiveBackend, ArchiveSettings, InfluxApi, InfluxCompression, InfluxSettings, S3Settings,
};

/// The defaults ship inside the binary, so `devicehub` runs from any directory.
const DEFAULTS: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub roles: Vec<ProcessRole>,
    pub mqtt: MqttSettings,
    pub influxdb: InfluxSettings,
    pub archive: ArchiveSettings,
    pub s3: S3Settings,
    pub collector: CollectorSettings,
    pub registry: RegistrySinkSettings,
    pub mikrotik: MikrotikSettings,
    pub shelly: ShellySettings,
    pub hikvision: HikvisionSettings,
    pub inventory: InventorySettings,
    pub network: NetworkSettings,
    pub analytics: AnalyticsSettings,
    pub stream: StreamSettings,
    pub metrics: MetricsSettings,
    /// How long a stop (SIGTERM, SIGINT) may take: the API finishes its requests, ingest
    /// journals and acknowledges what it holds, each sink writes its batch, the publisher sends
    /// its queue. What is not written by then stays in the journal.
    pub shutdown_grace_secs: u64,
}

/// A part of devicehub that a process runs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProcessRole {
    Api,
    Collector,
    Pollers,
    Analytics,
}

impl ProcessRole {
    /// Its name in `roles` (`DEVICEHUB__ROLES`).
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessRole::Api => "api",
            ProcessRole::Collector => "collector",
            ProcessRole::Pollers => "pollers",
            ProcessRole::Analytics => "analytics",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid database.url: {0}")]
    DatabaseUrl(String),
    #[error(
        "auth is enabled but auth.jwt_secret is missing or shorter than {MIN_JWT_SECRET_BYTES} bytes; \
         set DEVICEHUB__AUTH__JWT_SECRET (e.g. `openssl rand -base64 48`) or, on a trusted LAN \
         only, DEVICEHUB__AUTH__ENABLED=false"
    )]
    WeakJwtSecret,
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("{0}")]
    Invalid(String),
}

impl Settings {
    /// Loads the layered settings. `check` (called before serving) refuses unsafe ones; commands
    /// like `migrate` and `user add` need no JWT secret.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_with(file, None)
    }

    /// [`Settings::load`], with `env` instead of the process's environment when given.
    fn load_with(
        file: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).required(true));
        }
        let settings: Settings = builder
            .add_source(
                config::Environment::with_prefix("DEVICEHUB")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    // Every list setting: `a,b` in one variable.
                    .with_list_parse_key("roles")
                    .with_list_parse_key("http.cors_origins")
                    .with_list_parse_key("http.trusted_proxies")
                    .with_list_parse_key("shelly.hosts")
                    .with_list_parse_key("shelly.gen1_hosts")
                    .with_list_parse_key("network.device_subnets")
                    .with_list_parse_key("hikvision.hosts")
                    .with_list_parse_key("shelly.fingerprints")
                    .with_list_parse_key("hikvision.fingerprints")
                    .source(env),
            )
            .build()?
            .try_deserialize()?;
        settings.database.connect_options()?;
        Ok(settings)
    }

    /// Refuses unsafe or impossible settings before serving: each section checks itself.
    pub fn check(&self) -> Result<(), SettingsError> {
        if self.roles.is_empty() {
            return Err(SettingsError::Zero("the number of roles"));
        }
        self.http.check()?;
        self.stream.check()?;
        self.database.check()?;
        self.auth.check(self.http.bind)?;
        self.mqtt.check()?;
        self.check_collector()?;
        if self.archive.backend == ArchiveBackend::S3 {
            self.s3.check()?;
        }
        self.mikrotik.check()?;
        self.network.subnets()?;
        self.shelly.check()?;
        self.check_pollers()?;
        self.analytics.check()?;
        self.check_example_credentials()
    }
}

/// The networks a list setting names: CIDRs (`10.42.0.0/16`), a bare address being its /32 or
/// /128; empty entries (an unset variable in docker-compose.yml) dropped.
pub(crate) fn networks(
    setting: &str,
    values: &[String],
) -> Result<Vec<ipnet::IpNet>, SettingsError> {
    values
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    SettingsError::Invalid(format!(
                        "{setting}: {s:?} is not a CIDR (192.168.88.0/24) or an address"
                    ))
                })
        })
        .collect()
}

/// `localhost` or a loopback address (IPv6 in brackets, as in URLs, or bare).
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Settings {
    /// The pollers hand what they read to the collector's ingest: configured Shelly and HikVision
    /// hosts need both roles in one process.
    fn check_pollers(&self) -> Result<(), SettingsError> {
        if !self.runs(ProcessRole::Pollers) || self.runs(ProcessRole::Collector) {
            return Ok(());
        }
        for (setting, hosts) in [
            ("shelly.hosts", &self.shelly.hosts),
            ("hikvision.hosts", &self.hikvision.hosts),
        ] {
            if !hosts.is_empty() {
                return Err(SettingsError::Invalid(format!(
                    "{setting} is set, but the pollers hand what they read to the collector: \
                     run the pollers role together with the collector role"
                )));
            }
        }
        Ok(())
    }

    pub fn runs(&self, role: ProcessRole) -> bool {
        self.roles.contains(&role)
    }
}

#[cfg(test)]
mod tests;
