//! HikVision cameras over ISAPI: [`CameraClient`] asks a camera for its device info, its
//! alert stream and its picture, answering digest (or, for a configured camera, basic)
//! challenges; [`isapi`] reads the XML answers and [`multipart`] splits the alert stream.

pub mod isapi;
pub mod multipart;

use std::sync::Arc;
use std::time::Duration;

use super::http_auth::{AuthedHost, Credentials, DeviceError};
use crate::configuration::HikvisionSettings;

const DEVICE_INFO: &str = "/ISAPI/System/deviceInfo";
const ALERT_STREAM: &str = "/ISAPI/Event/notification/alertStream";
const PICTURE: &str = "/ISAPI/Streaming/channels/101/picture";

/// Why a camera failed.
pub type CameraError = DeviceError;

/// ISAPI requests to cameras, with the configured credentials.
#[derive(Clone)]
pub struct CameraClient {
    http: reqwest::Client,
    credentials: Arc<Credentials>,
    timeout: Duration,
    /// `hikvision.max_answer_bytes` and `.max_picture_bytes`.
    limits: (usize, usize),
    /// `hikvision.hosts`: the only hosts the camera password goes to.
    configured: Arc<std::collections::HashSet<String>>,
}

impl CameraClient {
    pub fn new(
        settings: &HikvisionSettings,
        networks: Arc<super::DeviceNetworks>,
    ) -> anyhow::Result<Self> {
        let timeout = Duration::from_millis(settings.timeout_ms.max(1));
        // No overall timeout on the client: the alert stream stays open. Each plain request
        // sets its own.
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .user_agent(concat!("devicehub/", env!("CARGO_PKG_VERSION")));
        let trust = super::pinning::Trust::for_devices(
            settings.ca_file.as_deref(),
            &settings.fingerprints,
            "hikvision",
        )?;
        Ok(Self {
            http: super::with_trust(http, trust)?.build()?,
            credentials: Arc::new(Credentials {
                digest_user: settings.username.clone(),
                basic_user: settings.username.clone(),
                password: super::http_auth::non_empty(settings.password.as_ref()),
                networks,
            }),
            timeout,
            limits: (settings.max_answer_bytes, settings.max_picture_bytes),
            configured: Arc::new(settings.hosts.iter().cloned().collect()),
        })
    }

    /// A camera. One the operator configured (`hikvision.hosts`) gets the password, by basic
    /// auth too, which some ISAPI firmwares ask for; any other (a device record pointing
    /// elsewhere) is asked without it.
    pub fn host(&self, host: &str) -> AuthedHost {
        if !self.configured.contains(host) {
            let anonymous = Arc::new(self.credentials.without_password());
            return AuthedHost::new(self.http.clone(), host, anonymous);
        }
        let host = AuthedHost::new(self.http.clone(), host, self.credentials.clone());
        host.allow_basic();
        host
    }

    /// The alert stream, held open (no timeout): `multipart/mixed` parts of alert XML.
    pub async fn alert_stream(&self, host: &AuthedHost) -> Result<reqwest::Response, CameraError> {
        self.get(host, ALERT_STREAM, None).await
    }

    async fn get(
        &self,
        host: &AuthedHost,
        path: &str,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, CameraError> {
        let response = host
            .send(reqwest::Method::GET, path, None, timeout)
            .await
            .map_err(|e| CameraError::of(host.name(), e))?;
        if !response.status().is_success() {
            return Err(CameraError::Status {
                host: host.name().to_owned(),
                status: response.status().as_u16(),
            });
        }
        Ok(response)
    }

    pub async fn device_info(&self, host: &AuthedHost) -> Result<isapi::DeviceInfo, CameraError> {
        let response = self.get(host, DEVICE_INFO, Some(self.timeout)).await?;
        let body = CameraError::body_of(host.name(), response, self.limits.0).await?;
        isapi::device_info(&body).map_err(|e| CameraError::malformed(host.name(), e))
    }

    /// The camera's current picture: JPEG bytes.
    pub async fn snapshot(&self, host: &str) -> Result<Vec<u8>, CameraError> {
        let host = self.host(host);
        let response = self.get(&host, PICTURE, Some(self.timeout * 2)).await?;
        let body = CameraError::body_of(host.name(), response, self.limits.1).await?;
        if !body.starts_with(&[0xFF, 0xD8, 0xFF]) {
            return Err(CameraError::malformed(
                host.name(),
                "the picture is not a JPEG",
            ));
        }
        Ok(body)
    }
}
