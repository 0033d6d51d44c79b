//! The Shelly HTTP client: one per fleet with the shared credentials, a [`ShellyHost`] per
//! device. Gen2/Gen3 answer `/rpc/...`, Gen1 `/status` and `/shelly`; with a password set, a
//! 401 is answered with what its challenge asks for: digest, or basic for the hosts the
//! operator listed in `shelly.gen1_hosts` only. [`ShellyClient::without_password`] is for
//! hosts that are polled but not trusted with the password (found by their DHCP name alone).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::http_auth::{AuthedHost, Credentials, DeviceError};
use crate::configuration::ShellySettings;

/// Why a Shelly poll failed.
pub type ShellyError = DeviceError;

/// An HTTP client for Shelly devices, with the shared credentials.
#[derive(Clone)]
pub struct ShellyClient {
    http: reqwest::Client,
    credentials: Arc<Credentials>,
    /// `shelly.max_answer_bytes`.
    limit: usize,
    /// `shelly.gen1_hosts`: the hosts basic auth is answered for.
    gen1: Arc<std::collections::HashSet<String>>,
}

impl ShellyClient {
    pub fn new(
        settings: &ShellySettings,
        networks: Arc<super::DeviceNetworks>,
    ) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("devicehub/", env!("CARGO_PKG_VERSION")));
        let trust = super::pinning::Trust::for_devices(
            settings.ca_file.as_deref(),
            &settings.fingerprints,
            "shelly",
        )?;
        Ok(Self {
            http: super::with_trust(http, trust)?.build()?,
            credentials: Arc::new(Credentials {
                digest_user: "admin".into(),
                basic_user: settings.username.clone(),
                password: super::http_auth::non_empty(settings.password.as_ref()),
                networks,
            }),
            limit: settings.max_answer_bytes,
            gen1: Arc::new(settings.gen1_hosts.iter().map(|h| normal_host(h)).collect()),
        })
    }

    /// The same client without the password.
    pub fn without_password(&self) -> Self {
        Self {
            credentials: Arc::new(self.credentials.without_password()),
            ..self.clone()
        }
    }

    /// One host (`address[:port]`); basic auth is answered only for a `shelly.gen1_hosts` host.
    pub fn host(&self, host: &str) -> ShellyHost {
        let authed = AuthedHost::new(self.http.clone(), host, self.credentials.clone());
        if self.gen1.contains(&normal_host(host)) {
            authed.allow_basic();
        }
        ShellyHost(authed, self.limit)
    }

    /// Whether the operator listed `host` as a Gen1 Shelly.
    pub fn is_gen1_host(&self, host: &str) -> bool {
        self.gen1.contains(&normal_host(host))
    }
}

/// `host[:port]` without the default port 80, so that one host is one name.
pub fn normal_host(host: &str) -> String {
    host.strip_suffix(":80").unwrap_or(host).to_owned()
}

/// One Shelly host.
#[derive(Clone)]
pub struct ShellyHost(AuthedHost, usize);

impl ShellyHost {
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// Sends `method path`, answering the host's auth challenge when a password is set.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, ShellyError> {
        self.0
            .send(method, path, body, None)
            .await
            .map_err(|e| DeviceError::of(self.name(), e))
    }

    /// `GET path` as JSON.
    pub async fn get(&self, path: &str) -> Result<Value, ShellyError> {
        let response = self.send(reqwest::Method::GET, path, None).await?;
        self.json_of(response).await
    }

    /// A successful answer's body as JSON, read up to `shelly.max_answer_bytes`.
    pub async fn json_of(&self, response: reqwest::Response) -> Result<Value, ShellyError> {
        let host = self.name();
        let status = response.status();
        if !status.is_success() {
            return Err(ShellyError::Status {
                host: host.to_owned(),
                status: status.as_u16(),
            });
        }
        let body = DeviceError::body_of(host, response, self.1).await?;
        serde_json::from_slice(&body).map_err(|e| ShellyError::Malformed {
            host: host.to_owned(),
            message: format!("not JSON: {e}"),
        })
    }
}
