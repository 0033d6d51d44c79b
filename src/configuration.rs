//! One typed settings tree: `config/default.toml`, then an optional `--config` file, then
//! `DEVICEHUB__SECTION__KEY` environment variables. Secrets are `SecretString`s, so they never
//! appear in logs or `Debug` output.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

mod analytics;
mod network;

pub use analytics::AnalyticsSettings;
pub use network::{HikvisionSettings, InventorySettings, MikrotikSettings, ShellySettings};

/// The defaults ship inside the binary, so `devicehub` runs from any directory.
const DEFAULTS: &str = include_str!("../config/default.toml");

/// The largest `mqtt.max_payload_bytes` accepted.
pub const MAX_PAYLOAD_LIMIT: usize = 16 * 1024 * 1024;

/// JWT secrets published with devicehub for development (`scripts/run.sh`): refused unless the
/// API listens on loopback only.
pub const DEV_JWT_SECRETS: &[&str] = &["dev-only-insecure-jwt-secret-change-me-0123456789"];

/// Shortest HS256 secret accepted (RFC 7518 asks for a key at least as long as the hash).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub roles: Vec<Role>,
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
    pub analytics: AnalyticsSettings,
    pub stream: StreamSettings,
    /// How long a stop (SIGTERM, SIGINT) may take: the API finishes its requests, ingest
    /// journals and acknowledges what it holds, each sink writes its batch, the publisher sends
    /// its queue. What is not written by then stays in the journal.
    pub shutdown_grace_secs: u64,
}

/// How a sink batches: a batch is written once it holds `max_events` journal records or
/// `max_bytes` encoded, or `timeout_ms` after its first record, whichever comes first.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct BatchSettings {
    pub max_events: usize,
    pub max_bytes: usize,
    pub timeout_ms: u64,
}

/// The registry sink (PostgreSQL).
#[derive(Debug, Clone, Deserialize)]
pub struct RegistrySinkSettings {
    pub batch: BatchSettings,
}

/// A part of devicehub that a process runs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Api,
    Collector,
    Pollers,
    Analytics,
}

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

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    V1,
    V2,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InfluxSettings {
    pub url: String,
    pub api: InfluxApi,
    pub org: String,
    pub bucket: String,
    pub token: Option<SecretString>,
    pub database: String,
    pub retention_policy: String,
    pub username: Option<String>,
    pub password: Option<SecretString>,
    pub batch: BatchSettings,
    pub timeout_secs: u64,
    #[serde(default)]
    pub compression: InfluxCompression,
}

/// How write bodies travel to InfluxDB.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum InfluxCompression {
    /// gzip, unless InfluxDB is on this machine: over loopback there is no bandwidth to save, and
    /// compressing and decompressing only cost both processes CPU.
    #[default]
    Auto,
    Gzip,
    None,
}

impl InfluxSettings {
    /// Whether write bodies are gzip-compressed.
    pub fn gzip(&self) -> bool {
        match self.compression {
            InfluxCompression::Gzip => true,
            InfluxCompression::None => false,
            InfluxCompression::Auto => !url::Url::parse(&self.url)
                .ok()
                .and_then(|u| u.host_str().map(is_loopback_host))
                .unwrap_or(false),
        }
    }
}

/// `localhost` or a loopback address (IPv6 in brackets, as in URLs, or bare).
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveBackend {
    Local,
    S3,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ArchiveSettings {
    pub backend: ArchiveBackend,
    pub dir: std::path::PathBuf,
    pub batch: BatchSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key: Option<SecretString>,
    pub secret_key: Option<SecretString>,
    /// `http://endpoint/bucket/key` instead of `http://bucket.endpoint/key` (MinIO and most
    /// self-hosted servers need it).
    pub path_style: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CollectorSettings {
    pub journal_dir: std::path::PathBuf,
    pub max_journal_bytes: u64,
    /// Journal files roll at this size; whole files are deleted once every sink is past them.
    pub segment_bytes: u64,
    pub fsync: FsyncPolicy,
    pub send_interval_secs: u64,
    pub hello_interval_secs: u64,
    pub liveness_check_secs: u64,
}

/// When the journal is handed to the disk (`fsync`). Either way a record is in the OS before
/// the broker gets its acknowledgement, so it survives devicehub crashing; the policy decides
/// what survives the machine crashing.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// Before the acknowledgements of each batch: nothing acknowledged is lost.
    Batch,
    /// Once a second: up to a second of acknowledged messages can be lost with the machine.
    Interval,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub bind: SocketAddr,
    pub max_body_bytes: usize,
    pub workers: usize,
    /// Origins (`https://console.example`) whose browser pages may call the API, with
    /// credentials; none by default.
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

/// The live stream for browsers (`GET /api/stream`).
#[derive(Debug, Clone, Deserialize)]
pub struct StreamSettings {
    /// Stream clients one process serves at once; more get 503.
    pub max_clients: usize,
    /// Seconds between heartbeats on an idle stream (and checks that its user may still look).
    pub heartbeat_secs: u64,
    /// Seconds a stream ticket opens streams for.
    pub ticket_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_secs: u64,
    pub create_if_missing: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub enabled: bool,
    pub jwt_secret: Option<SecretString>,
    pub token_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    pub login_attempts_per_minute: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
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
                    .with_list_parse_key("shelly.hosts")
                    .with_list_parse_key("hikvision.hosts")
                    .source(env),
            )
            .build()?
            .try_deserialize()?;
        settings.database.connect_options()?;
        Ok(settings)
    }

    pub fn check(&self) -> Result<(), SettingsError> {
        self.database.connect_options()?;
        for origin in &self.http.cors_origins {
            let valid = url::Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.origin().ascii_serialization() == origin.trim_end_matches('/')
            });
            if !valid {
                return Err(SettingsError::Invalid(format!(
                    "http.cors_origins: {origin:?} is not an origin (scheme://host[:port], no \
                     path; `*` is refused, since browsers send credentials)"
                )));
            }
        }
        if self.stream.heartbeat_secs == 0 || self.stream.ticket_ttl_secs == 0 {
            return Err(SettingsError::Invalid(
                "stream.heartbeat_secs and stream.ticket_ttl_secs must be at least 1".into(),
            ));
        }
        if self.auth.enabled {
            let long_enough = self
                .auth
                .jwt_secret
                .as_ref()
                .is_some_and(|s| s.expose_secret().len() >= MIN_JWT_SECRET_BYTES);
            if !long_enough {
                return Err(SettingsError::WeakJwtSecret);
            }
            let public = self
                .auth
                .jwt_secret
                .as_ref()
                .is_some_and(|s| DEV_JWT_SECRETS.contains(&s.expose_secret()));
            if public && !self.http.bind.ip().is_loopback() {
                return Err(SettingsError::Invalid(format!(
                    "auth.jwt_secret is devicehub's published development secret, which anyone \
                     can sign tokens with; it is refused unless http.bind is a loopback address \
                     (it is {}). Set DEVICEHUB__AUTH__JWT_SECRET (e.g. `openssl rand -base64 48`)",
                    self.http.bind
                )));
            }
        }
        if self.auth.token_ttl_secs == 0 {
            return Err(SettingsError::Zero("auth.token_ttl_secs"));
        }
        if self.auth.login_attempts_per_minute == 0 {
            return Err(SettingsError::Zero("auth.login_attempts_per_minute"));
        }
        if self.database.max_connections == 0 {
            return Err(SettingsError::Zero("database.max_connections"));
        }
        if self.roles.is_empty() {
            return Err(SettingsError::Zero("the number of roles"));
        }
        if self.mqtt.registrations_per_minute == 0 {
            return Err(SettingsError::Zero("mqtt.registrations_per_minute"));
        }
        if let Some(unknown) = self
            .mqtt
            .unknown_devices_by_protocol
            .keys()
            .find(|k| !PROTOCOLS.contains(&k.as_str()))
        {
            return Err(SettingsError::Invalid(format!(
                "mqtt.unknown_devices_by_protocol: {unknown:?} is not a protocol; use {PROTOCOLS:?}"
            )));
        }
        if self.mqtt.local_timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(SettingsError::Invalid(format!(
                "mqtt.local_timezone {:?} is not an IANA zone name",
                self.mqtt.local_timezone
            )));
        }
        for (name, batch) in [
            ("influxdb.batch", self.influxdb.batch),
            ("archive.batch", self.archive.batch),
            ("registry.batch", self.registry.batch),
        ] {
            if batch.max_events == 0 || batch.max_bytes == 0 {
                return Err(SettingsError::Invalid(format!(
                    "{name}.max_events and {name}.max_bytes must be greater than zero"
                )));
            }
        }
        if self.collector.segment_bytes < 4096
            || self.collector.segment_bytes > self.collector.max_journal_bytes
        {
            return Err(SettingsError::Invalid(
                "collector.segment_bytes must be at least 4096 and at most collector.max_journal_bytes".into(),
            ));
        }
        // A journal record holds one message; the journal takes records up to 64 MiB.
        if !(1..=MAX_PAYLOAD_LIMIT).contains(&self.mqtt.max_payload_bytes) {
            return Err(SettingsError::Invalid(format!(
                "mqtt.max_payload_bytes must be 1 to {MAX_PAYLOAD_LIMIT}"
            )));
        }
        if self.archive.backend == ArchiveBackend::S3 {
            self.s3.check()?;
        }
        if let Some(url) = self.mikrotik.url.as_deref().filter(|u| !u.is_empty()) {
            let parsed = url::Url::parse(url).map_err(|e| {
                SettingsError::Invalid(format!("mikrotik.url {url:?} is not a URL: {e}"))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(SettingsError::Invalid(format!(
                    "mikrotik.url {url:?} must be https:// (or http://)"
                )));
            }
            if self.mikrotik.interval_s == 0 || self.mikrotik.timeout_ms == 0 {
                return Err(SettingsError::Zero(
                    "mikrotik.interval_s and mikrotik.timeout_ms",
                ));
            }
        }
        if self.shelly.interval_s == 0 || self.shelly.timeout_ms == 0 {
            return Err(SettingsError::Zero(
                "shelly.interval_s and shelly.timeout_ms",
            ));
        }
        if self.http.max_body_bytes == 0 {
            return Err(SettingsError::Zero("http.max_body_bytes"));
        }
        self.analytics.check()
    }
}

/// Keys that ship with MinIO and in examples: never acceptable outside a developer's machine.
const WELL_KNOWN_S3_KEYS: &[&str] = &["minioadmin", "AKIAIOSFODNN7EXAMPLE", "devicehub-dev"];

impl S3Settings {
    fn check(&self) -> Result<(), SettingsError> {
        let (Some(access), Some(secret)) = (&self.access_key, &self.secret_key) else {
            return Err(SettingsError::Invalid(
                "archive.backend = \"s3\" needs s3.access_key and s3.secret_key \
                 (DEVICEHUB__S3__ACCESS_KEY, DEVICEHUB__S3__SECRET_KEY)"
                    .into(),
            ));
        };
        if self.bucket.is_empty() {
            return Err(SettingsError::Invalid("s3.bucket must not be empty".into()));
        }
        if let Some(endpoint) = self.endpoint.as_deref().filter(|e| !e.is_empty()) {
            let url = url::Url::parse(endpoint).map_err(|e| {
                SettingsError::Invalid(format!("s3.endpoint {endpoint:?} is not a URL: {e}"))
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(SettingsError::Invalid(format!(
                    "s3.endpoint {endpoint:?} must be http:// or https://"
                )));
            }
            let loopback = url.host_str().is_some_and(is_loopback_host);
            let well_known = WELL_KNOWN_S3_KEYS
                .iter()
                .any(|k| access.expose_secret() == *k || secret.expose_secret() == *k);
            if well_known && !loopback {
                return Err(SettingsError::Invalid(
                    "s3 keys are a well-known default (e.g. minioadmin); set your own keys for \
                     an S3 server that is not on this machine"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

impl DatabaseSettings {
    /// Connection options from the URL. Without an explicit `sslmode`, a loopback or Unix-socket
    /// server is reached without TLS: there is no wire to protect, and TLS costs both sides CPU.
    pub fn connect_options(&self) -> Result<PgConnectOptions, SettingsError> {
        let url = self.url.expose_secret();
        let options = url
            .parse::<PgConnectOptions>()
            .map_err(|e| SettingsError::DatabaseUrl(e.to_string()))?;
        let host = options.get_host();
        let local = host.starts_with('/') || is_loopback_host(host);
        if local && !url.contains("sslmode=") {
            return Ok(options.ssl_mode(PgSslMode::Disable));
        }
        Ok(options)
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_secs)
    }
}

impl Settings {
    pub fn runs(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[cfg(test)]
mod tests;
