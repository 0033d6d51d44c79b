//! `[influxdb]`, `[archive]` and `[s3]`: where the sinks write.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{is_loopback_host, BatchSettings, SettingsError};

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
    /// PEM: InfluxDB's own (self-signed) certificate, pinned, or the CA of its certificate.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// InfluxDB's certificate's SHA-256 fingerprint (`sha256:AB:CD:…`), pinned.
    #[serde(default)]
    pub fingerprint: Option<String>,
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
    /// PEM: the S3 server's own (self-signed) certificate, pinned, or its CA.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// The S3 server's certificate's SHA-256 fingerprint (`sha256:AB:CD:…`), pinned.
    #[serde(default)]
    pub fingerprint: Option<String>,
}

/// Keys that ship with MinIO and in examples: never acceptable outside a developer's machine.
const WELL_KNOWN_S3_KEYS: &[&str] = &["minioadmin", "AKIAIOSFODNN7EXAMPLE", "devicehub-dev"];

impl S3Settings {
    pub(super) fn check(&self) -> Result<(), SettingsError> {
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
