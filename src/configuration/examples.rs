//! Credentials published with devicehub — in `.env.example`, `deploy/k8s/secrets.env.example`,
//! `scripts/run.sh` and the README's examples — are known to everyone who can read the
//! repository. A process refuses to start with any of them in a secret setting unless its API
//! listens on loopback only or the service the credential opens is on this machine (as it
//! refuses the development JWT secret); a placeholder (`<...>`, as in `secrets.env.example`) is
//! refused everywhere. `tests/api/docs.rs` checks that every
//! credential in those files is in [`EXAMPLE_SECRETS`].

use std::net::SocketAddr;

use secrecy::{ExposeSecret, SecretString};

use super::{Settings, SettingsError};

/// Every credential value the repository publishes.
pub const EXAMPLE_SECRETS: &[&str] = &[
    // scripts/run.sh and scripts/lib.sh
    "dev-only-insecure-jwt-secret-change-me-0123456789",
    "dev-only-admin-password",
    "dev-only-broker-password",
    "dev-only-device-password",
    "devicehub-dev",
    "devicehub-dev-secret",
    "dev-only-router-password",
    "dev-only-shelly-password",
    "dev-only-camera-password",
    // the benchmark and fuzzing scripts
    "bench-only-secret-not-for-production-0123456789",
    "schemathesis-only-secret-0123456789-abcdefgh",
    // .env.example
    "dev-only-postgres-password",
    "dev-only-influxdb-password",
    "dev-only-influxdb-admin-token",
    "dev-only-minio-password",
    "devOnlyBrokerPassword0123",
    "dev-only-grafana-password",
    // MinIO's and AWS's documented defaults
    "minioadmin",
    "AKIAIOSFODNN7EXAMPLE",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
];

/// Whether `value` is a published example or a placeholder left unfilled.
pub fn is_example(value: &str) -> bool {
    EXAMPLE_SECRETS.contains(&value) || is_placeholder(value)
}

/// `<at least 32 random bytes>`: a template's blank, never a real secret.
fn is_placeholder(value: &str) -> bool {
    value.contains('<') && value.contains('>')
}

/// The password of a URL's user info, percent-decoded.
fn url_password(url: &SecretString) -> Option<String> {
    let parsed = url::Url::parse(url.expose_secret()).ok()?;
    let password = parsed.password()?;
    Some(
        percent_encoding::percent_decode_str(password)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// The host of a URL, if it parses.
fn url_host(url: &str) -> Option<String> {
    url::Url::parse(url).ok()?.host_str().map(str::to_owned)
}

impl Settings {
    /// Refuses published example credentials unless the API listens on loopback only or the
    /// service the credential opens is on this machine (a developer's setup), and template
    /// placeholders always.
    pub(super) fn check_example_credentials(&self) -> Result<(), SettingsError> {
        let secret = |s: &Option<SecretString>| s.as_ref().map(|s| s.expose_secret().to_owned());
        let local = |host: Option<String>| host.is_some_and(|h| super::is_loopback_host(&h));
        let all_local = |hosts: &[String]| {
            !hosts.is_empty()
                && hosts.iter().all(|h| {
                    local(Some(
                        h.rsplit_once(':').map_or(h.as_str(), |(h, _)| h).to_owned(),
                    ))
                })
        };
        let api_local = self.http.bind.ip().is_loopback();
        // Each secret setting, its value, and whether what it opens is on this machine.
        let candidates: [(&str, Option<String>, bool); 11] = [
            ("auth.jwt_secret", secret(&self.auth.jwt_secret), api_local),
            (
                "database.url",
                url_password(&self.database.url),
                local(url_host(self.database.url.expose_secret())),
            ),
            (
                "mqtt.url",
                url_password(&self.mqtt.url),
                local(url_host(self.mqtt.url.expose_secret())),
            ),
            (
                "influxdb.token",
                secret(&self.influxdb.token),
                local(url_host(&self.influxdb.url)),
            ),
            (
                "influxdb.password",
                secret(&self.influxdb.password),
                local(url_host(&self.influxdb.url)),
            ),
            (
                "s3.access_key",
                secret(&self.s3.access_key),
                local(self.s3.endpoint.as_deref().and_then(url_host)),
            ),
            (
                "s3.secret_key",
                secret(&self.s3.secret_key),
                local(self.s3.endpoint.as_deref().and_then(url_host)),
            ),
            (
                "mikrotik.password",
                secret(&self.mikrotik.password),
                local(self.mikrotik.url().and_then(url_host)),
            ),
            (
                "shelly.password",
                secret(&self.shelly.password),
                all_local(&self.shelly.hosts),
            ),
            (
                "hikvision.password",
                secret(&self.hikvision.password),
                all_local(&self.hikvision.hosts),
            ),
            ("metrics.token", secret(&self.metrics.token), api_local),
        ];
        let bind: SocketAddr = self.http.bind;
        for (setting, value, target_local) in candidates {
            let Some(value) = value.filter(|v| !v.is_empty()) else {
                continue;
            };
            if is_placeholder(&value) {
                return Err(SettingsError::Invalid(format!(
                    "{setting} is still a template's placeholder ({}…); fill in a real value",
                    value.chars().take(12).collect::<String>()
                )));
            }
            if is_example(&value) && !api_local && !target_local {
                return Err(SettingsError::Invalid(format!(
                    "{setting} is a credential published in devicehub's examples, which anyone \
                     can read; it is refused unless http.bind is a loopback address (it is \
                     {bind}) or what it opens is on this machine. Set your own (e.g. \
                     `openssl rand -base64 32`)"
                )));
            }
        }
        Ok(())
    }
}
