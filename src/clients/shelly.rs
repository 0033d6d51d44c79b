//! The Shelly HTTP client: one per fleet with the shared credentials, a [`ShellyHost`] per
//! device. Gen2/Gen3 answer `/rpc/...`, Gen1 `/status` and `/shelly`; with a password set, a
//! 401 is answered with what its challenge asks for (digest for Gen2, basic for Gen1 only).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::http_auth::{AuthedHost, Credentials, DeviceError, HttpFailure};
use crate::configuration::ShellySettings;

/// Why a Shelly poll failed.
pub type ShellyError = DeviceError;

/// An HTTP client for Shelly devices, with the shared credentials.
#[derive(Clone)]
pub struct ShellyClient {
    http: reqwest::Client,
    credentials: Arc<Credentials>,
}

impl ShellyClient {
    pub fn new(settings: &ShellySettings) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .user_agent(concat!("devicehub/", env!("CARGO_PKG_VERSION")))
                .build()?,
            credentials: Arc::new(Credentials {
                digest_user: "admin".into(),
                basic_user: settings.username.clone(),
                password: super::http_auth::non_empty(settings.password.as_ref()),
            }),
        })
    }

    /// One host (`address[:port]`).
    pub fn host(&self, host: &str) -> ShellyHost {
        ShellyHost(AuthedHost::new(
            self.http.clone(),
            host,
            self.credentials.clone(),
        ))
    }
}

/// One Shelly host.
#[derive(Clone)]
pub struct ShellyHost(AuthedHost);

impl ShellyHost {
    pub fn name(&self) -> &str {
        self.0.name()
    }

    /// For a Gen1 device (basic auth is all it knows).
    pub fn allow_basic(&self) {
        self.0.allow_basic();
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
        json_of(self.name(), response).await
    }
}

/// A successful answer's body as JSON.
pub async fn json_of(host: &str, response: reqwest::Response) -> Result<Value, ShellyError> {
    let status = response.status();
    if !status.is_success() {
        return Err(ShellyError::Status {
            host: host.to_owned(),
            status: status.as_u16(),
        });
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| DeviceError::of(host, HttpFailure::of(&e)))?;
    serde_json::from_slice(&body).map_err(|e| ShellyError::Malformed {
        host: host.to_owned(),
        message: format!("not JSON: {e}"),
    })
}
