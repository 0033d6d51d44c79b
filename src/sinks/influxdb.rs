//! One InfluxDB sink for both protocols. The difference between InfluxDB 1.x (database,
//! retention policy, user/password) and 2.x/3.x (org, bucket, token) is a small [`Api`] value:
//! write URI, auth, and query parameters. Points are line protocol with the measurement's own
//! timestamp, so writing a point again (a retry, a replay) stores it once.

use std::io::Write;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::configuration::{InfluxApi, InfluxSettings};
use crate::pipeline::decode::Reading;

pub const MEASUREMENT: &str = "iot_telemetry";

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
    pub fn is_permanent(&self) -> bool {
        matches!(self, InfluxError::Rejected { .. })
    }

    /// InfluxDB 1.x answers 404 to writes into a database that does not exist (yet).
    pub fn is_missing_database(&self) -> bool {
        matches!(self, InfluxError::Failed { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

/// Connection details of one InfluxDB.
#[derive(Clone)]
pub struct InfluxClient {
    http: reqwest::Client,
    base: String,
    api: InfluxApi,
    org: String,
    bucket: String,
    token: Option<SecretString>,
    database: String,
    retention_policy: String,
    username: Option<String>,
    password: Option<SecretString>,
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
    pub fn new(settings: &InfluxSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.timeout_secs.max(1)))
            .pool_max_idle_per_host(4)
            .build()?;
        Ok(Self {
            http,
            base: settings.url.trim_end_matches('/').to_owned(),
            api: settings.api,
            org: settings.org.clone(),
            bucket: settings.bucket.clone(),
            token: settings.token.clone(),
            database: settings.database.clone(),
            retention_policy: settings.retention_policy.clone(),
            username: settings.username.clone(),
            password: settings.password.clone(),
            gzip: settings.gzip(),
        })
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self.api {
            InfluxApi::V2 => match &self.token {
                Some(token) => {
                    request.header("Authorization", format!("Token {}", token.expose_secret()))
                }
                None => request,
            },
            InfluxApi::V1 => match &self.username {
                Some(user) => request.query(&[
                    ("u", user.as_str()),
                    (
                        "p",
                        self.password
                            .as_ref()
                            .map(|p| p.expose_secret())
                            .unwrap_or(""),
                    ),
                ]),
                None => request,
            },
        }
    }

    /// Writes line protocol (gzip-compressed unless configured otherwise). `Bytes`, so that a
    /// retry does not copy the batch.
    pub async fn write(&self, lines: &bytes::Bytes) -> Result<(), InfluxError> {
        let request = match self.api {
            InfluxApi::V2 => self
                .http
                .post(format!("{}/api/v2/write", self.base))
                .query(&[
                    ("org", self.org.as_str()),
                    ("bucket", self.bucket.as_str()),
                    ("precision", "ns"),
                ]),
            InfluxApi::V1 => {
                let mut r = self
                    .http
                    .post(format!("{}/write", self.base))
                    .query(&[("db", self.database.as_str()), ("precision", "ns")]);
                if !self.retention_policy.is_empty() {
                    r = r.query(&[("rp", self.retention_policy.as_str())]);
                }
                r
            }
        };
        let request = self
            .authorize(request)
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
        let db = match self.api {
            InfluxApi::V2 => self.bucket.as_str(),
            InfluxApi::V1 => self.database.as_str(),
        };
        let response = self
            .authorize(self.http.get(format!("{}/query", self.base)))
            .query(&[("db", db), ("q", influxql), ("epoch", "ms")])
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

    /// Creates the v1 database when missing (InfluxDB 1.x; harmless elsewhere).
    pub async fn ensure_database(&self) -> Result<(), InfluxError> {
        if self.api != InfluxApi::V1 {
            return Ok(());
        }
        let response = self
            .authorize(self.http.post(format!("{}/query", self.base)))
            .form(&[(
                "q",
                format!("CREATE DATABASE \"{}\"", self.database.replace('"', "")),
            )])
            .send()
            .await?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            let status = response.status();
            Err(InfluxError::Failed {
                status,
                body: response.text().await.unwrap_or_default(),
            })
        }
    }

    /// Health: v2 `/health`, v1 `/ping`.
    pub async fn check(&self) -> Result<(), InfluxError> {
        let path = match self.api {
            InfluxApi::V2 => "/health",
            InfluxApi::V1 => "/ping",
        };
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(2))
            .send()
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            let status = response.status();
            Err(InfluxError::Failed {
                status,
                body: String::new(),
            })
        }
    }
}

/// Appends one reading as a line of line protocol.
/// One line of line protocol; tags in key order, as InfluxDB prefers them.
pub fn push_line(out: &mut String, reading: &Reading, device_type: Option<&str>) {
    out.push_str(MEASUREMENT);
    out.push_str(",device_id=");
    escape_tag(out, reading.device_id.as_str());
    if let Some(device_type) = device_type.filter(|t| !t.is_empty()) {
        out.push_str(",device_type=");
        escape_tag(out, device_type);
    }
    out.push_str(",metric=");
    escape_tag(out, reading.metric.as_str());
    if let Some(unit) = reading.unit.as_ref().filter(|u| !u.as_str().is_empty()) {
        out.push_str(",unit=");
        escape_tag(out, unit.as_str());
    }
    let nanos = reading.time.timestamp_nanos_opt().unwrap_or_default();
    // ryu prints f64 in the shortest form that reads back exactly, always with a decimal point
    // or an exponent (a float in line protocol); decoding has refused NaN and infinities.
    out.push_str(" value=");
    out.push_str(ryu::Buffer::new().format(reading.value));
    out.push(' ');
    out.push_str(itoa::Buffer::new().format(nanos));
    out.push('\n');
}

fn escape_tag(out: &mut String, value: &str) {
    let special = |c: char| matches!(c, ',' | '=' | ' ' | '\\');
    if !value.contains(special) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        if special(c) {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{DeviceId, MetricName, Unit};

    #[test]
    fn readings_become_line_protocol_with_their_own_timestamp() {
        let reading = Reading {
            device_id: DeviceId::parse("meter-1").unwrap(),
            time: chrono::Utc.with_ymd_and_hms(2026, 2, 12, 16, 0, 0).unwrap(),
            metric: MetricName::parse("voltage_dc").unwrap(),
            value: 750.0,
            unit: Some(Unit::parse("k W").unwrap()),
        };
        let mut out = String::new();
        push_line(&mut out, &reading, None);
        assert_eq!(out, "iot_telemetry,device_id=meter-1,metric=voltage_dc,unit=k\\ W value=750.0 1770912000000000000\n");
        out.clear();
        push_line(&mut out, &reading, Some("dc meter,v2"));
        assert_eq!(out, "iot_telemetry,device_id=meter-1,device_type=dc\\ meter\\,v2,metric=voltage_dc,unit=k\\ W value=750.0 1770912000000000000\n");
        for (value, text) in [
            (0.1, "0.1"),
            (-3.5, "-3.5"),
            (1e-7, "1e-7"),
            (2.5e21, "2.5e21"),
        ] {
            out.clear();
            push_line(
                &mut out,
                &Reading {
                    value,
                    ..reading.clone()
                },
                None,
            );
            assert!(out.contains(&format!(" value={text} ")), "{out}");
            assert_eq!(text.parse::<f64>().unwrap(), value, "reads back exactly");
        }
    }
}
