//! InfluxDB as devicehub uses it: line protocol writes (the InfluxDB sink) and InfluxQL reads
//! (the metrics API), over one client for both protocols. The difference between InfluxDB 1.x
//! (database, retention policy, user/password) and 2.x/3.x (org, bucket, token) is a small
//! [`Api`] value: write URI, health URI, auth and the database a query names.

use std::io::Write;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::configuration::{InfluxApi, InfluxSettings};

/// The measurement every reading is a point of.
pub const MEASUREMENT: &str = "iot_telemetry";

/// Where `devicehub doctor` writes its probe points, apart from the readings.
pub const PROBE_MEASUREMENT: &str = "devicehub_doctor";

#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    #[error("InfluxDB unreachable: {0}")]
    Unreachable(#[from] reqwest::Error),
    /// The server refused the data itself; retrying cannot help.
    #[error("InfluxDB rejected the write ({status}): {body}")]
    Rejected { status: StatusCode, body: String },
    /// A server-side or configuration problem (auth, missing bucket, overload); retry later.
    #[error("InfluxDB answered {status}: {body}")]
    Failed { status: StatusCode, body: String },
    #[error("cannot read InfluxDB's answer: {0}")]
    Answer(String),
}

impl InfluxError {
    /// The server refused the data itself.
    pub fn is_permanent(&self) -> bool {
        matches!(self, InfluxError::Rejected { .. })
    }

    /// The HTTP status InfluxDB answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            InfluxError::Rejected { status, .. } | InfluxError::Failed { status, .. } => {
                Some(status.as_u16())
            }
            _ => None,
        }
    }
}

/// What differs between the two protocols.
#[derive(Clone)]
enum Api {
    V1 {
        database: String,
        retention_policy: String,
        username: Option<String>,
        password: Option<SecretString>,
    },
    V2 {
        org: String,
        bucket: String,
        token: Option<SecretString>,
    },
}

impl Api {
    fn from_settings(settings: &InfluxSettings) -> Self {
        match settings.api {
            InfluxApi::V1 => Api::V1 {
                database: settings.database.clone(),
                retention_policy: settings.retention_policy.clone(),
                username: settings.username.clone(),
                password: settings.password.clone(),
            },
            InfluxApi::V2 => Api::V2 {
                org: settings.org.clone(),
                bucket: settings.bucket.clone(),
                token: settings.token.clone(),
            },
        }
    }

    fn write(&self, http: &reqwest::Client, base: &str) -> RequestBuilder {
        match self {
            Api::V2 { org, bucket, .. } => http.post(format!("{base}/api/v2/write")).query(&[
                ("org", org.as_str()),
                ("bucket", bucket.as_str()),
                ("precision", "ns"),
            ]),
            Api::V1 {
                database,
                retention_policy,
                ..
            } => {
                let request = http
                    .post(format!("{base}/write"))
                    .query(&[("db", database.as_str()), ("precision", "ns")]);
                if retention_policy.is_empty() {
                    request
                } else {
                    request.query(&[("rp", retention_policy.as_str())])
                }
            }
        }
    }

    fn health_path(&self) -> &'static str {
        match self {
            Api::V2 { .. } => "/health",
            Api::V1 { .. } => "/ping",
        }
    }

    /// The database InfluxQL statements run against (InfluxDB 2 maps the bucket).
    fn query_database(&self) -> &str {
        match self {
            Api::V2 { bucket, .. } => bucket,
            Api::V1 { database, .. } => database,
        }
    }

    fn authorize(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Api::V2 {
                token: Some(token), ..
            } => request.header("Authorization", format!("Token {}", token.expose_secret())),
            // HTTP Basic, which InfluxDB 1.x takes as well as `u`/`p` query parameters: a URL
            // ends up in logs (ours, a proxy's, InfluxDB's), a header does not.
            Api::V1 {
                username: Some(user),
                password,
                ..
            } => request.basic_auth(
                user,
                Some(password.as_ref().map_or("", |p| p.expose_secret())),
            ),
            _ => request,
        }
    }
}

/// Connection details of one InfluxDB.
#[derive(Clone)]
pub struct InfluxClient {
    http: reqwest::Client,
    base: String,
    api: Api,
    gzip: bool,
}

/// One series of an InfluxQL answer.
#[derive(Debug, Deserialize)]
pub struct Series {
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    pub columns: Vec<String>,
    #[serde(default)]
    pub values: Vec<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct QueryAnswer {
    #[serde(default)]
    results: Vec<StatementAnswer>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct StatementAnswer {
    #[serde(default)]
    series: Vec<Series>,
    error: Option<String>,
}

impl InfluxClient {
    /// A client for `settings`; over https:// with `influxdb.ca_file` or `influxdb.fingerprint`
    /// set, InfluxDB's own certificate is pinned (see [`crate::clients::pinning`]).
    pub fn new(settings: &InfluxSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs.max(1)))
            .pool_max_idle_per_host(4);
        let trust = crate::clients::pinning::Trust::from_settings(
            settings.ca_file.as_deref(),
            settings.fingerprint.as_deref(),
            "influxdb",
        )?;
        let http = crate::clients::with_trust(http, trust)?.build()?;
        Ok(Self {
            http,
            base: settings.url.trim_end_matches('/').to_owned(),
            api: Api::from_settings(settings),
            gzip: settings.gzip(),
        })
    }

    /// Writes line protocol (gzip-compressed unless configured otherwise). `Bytes`, so that a
    /// retry does not copy the batch.
    pub async fn write(&self, lines: &bytes::Bytes) -> Result<(), InfluxError> {
        let request = self
            .api
            .authorize(self.api.write(&self.http, &self.base))
            .header("Content-Type", "text/plain; charset=utf-8");
        let request = if self.gzip {
            let mut gz = GzEncoder::new(Vec::with_capacity(lines.len() / 4), Compression::fast());
            gz.write_all(lines)
                .map_err(|e| InfluxError::Answer(e.to_string()))?;
            let body = gz
                .finish()
                .map_err(|e| InfluxError::Answer(e.to_string()))?;
            request.header("Content-Encoding", "gzip").body(body)
        } else {
            request.body(lines.clone())
        };
        let response = request.send().await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect();
        Err(match status {
            StatusCode::BAD_REQUEST
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::UNPROCESSABLE_ENTITY => InfluxError::Rejected { status, body },
            _ => InfluxError::Failed { status, body },
        })
    }

    /// Runs an InfluxQL statement through `/query` (InfluxDB 1.x, 2.x with DBRP mapping, 3.x).
    pub async fn query(&self, influxql: &str) -> Result<Vec<Series>, InfluxError> {
        let response = self
            .api
            .authorize(self.http.get(format!("{}/query", self.base)))
            .query(&[
                ("db", self.api.query_database()),
                ("q", influxql),
                ("epoch", "ms"),
            ])
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(InfluxError::Failed {
                status,
                body: text.chars().take(500).collect(),
            });
        }
        let answer: QueryAnswer =
            serde_json::from_str(&text).map_err(|e| InfluxError::Answer(e.to_string()))?;
        if let Some(error) = answer.error {
            return Err(InfluxError::Answer(error));
        }
        let mut series = Vec::new();
        for statement in answer.results {
            match statement.error {
                // Nothing was ever written: no data rather than a failure.
                Some(error) if error.starts_with("database not found") => continue,
                Some(error) => return Err(InfluxError::Answer(error)),
                None => {}
            }
            series.extend(statement.series);
        }
        Ok(series)
    }

    /// Writes a probe point (measurement [`PROBE_MEASUREMENT`], tag `probe = nonce`) and reads
    /// it back through `/query`, as `devicehub doctor` asks of InfluxDB: `Ok(false)` when it was
    /// written but not read back within two seconds.
    pub async fn probe(&self, nonce: &str) -> Result<bool, InfluxError> {
        let nonce: String = nonce.chars().filter(char::is_ascii_alphanumeric).collect();
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        let line = format!("{PROBE_MEASUREMENT},probe={nonce} ok=1i {now}\n");
        self.write(&bytes::Bytes::from(line)).await?;
        let query = format!(
            "SELECT \"ok\" FROM \"{PROBE_MEASUREMENT}\" WHERE \"probe\" = '{nonce}' AND time > now() - 1h"
        );
        for _ in 0..10 {
            let series = self.query(&query).await?;
            if series.iter().any(|s| !s.values.is_empty()) {
                return Ok(true);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(false)
    }

    /// Creates the v1 database when missing (InfluxDB 1.x; nothing to do for v2).
    pub async fn ensure_database(&self) -> Result<(), InfluxError> {
        let Api::V1 { database, .. } = &self.api else {
            return Ok(());
        };
        let response = self
            .api
            .authorize(self.http.post(format!("{}/query", self.base)))
            .form(&[(
                "q",
                format!("CREATE DATABASE \"{}\"", database.replace('"', "")),
            )])
            .send()
            .await?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(InfluxError::Failed {
                status,
                body: response.text().await.unwrap_or_default(),
            })
        }
    }

    /// Health: v2 `/health`, v1 `/ping`.
    pub async fn check(&self) -> Result<(), InfluxError> {
        let response = self
            .http
            .get(format!("{}{}", self.base, self.api.health_path()))
            .timeout(Duration::from_secs(2))
            .send()
            .await?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(InfluxError::Failed {
                status,
                body: String::new(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_credentials_travel_in_a_header_never_in_the_url() {
        let mut settings = crate::configuration::Settings::load(None).unwrap().influxdb;
        settings.api = InfluxApi::V1;
        settings.username = Some("writer".into());
        settings.password = Some(SecretString::from("s3cret-pw"));
        let client = InfluxClient::new(&settings).unwrap();
        for request in [
            client
                .api
                .authorize(client.api.write(&client.http, &client.base)),
            client
                .api
                .authorize(client.http.get(format!("{}/query", client.base))),
        ] {
            let request = request.build().unwrap();
            let url = request.url().as_str();
            assert!(!url.contains("s3cret") && !url.contains("writer"), "{url}");
            let header = request.headers()["authorization"].to_str().unwrap();
            assert!(header.starts_with("Basic "), "{header}");
        }
    }
}
