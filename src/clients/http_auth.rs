//! HTTP to devices on the LAN that may ask for credentials: a request goes out with what the
//! host asked for last, and a 401 is answered once with what its challenge asks for — digest
//! (RFC 7616: Shelly Gen2's SHA-256, HikVision's MD5; the challenge is kept and its nonce count
//! advanced, so later requests need no extra round trip) or basic (Shelly Gen1).
//!
//! Basic auth puts the password on the wire, so it is only answered for a host allowed it
//! ([`AuthedHost::allow_basic`]: a Shelly the operator listed in `shelly.gen1_hosts`, or a
//! camera the operator configured); any other host asking for it gets no password. A host found
//! through DHCP names its own host name, and a host's answers name its own generation, so "it
//! says it is a Gen1 Shelly" proves nothing. No request goes outside the device networks.

use std::sync::{Arc, Mutex};

use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// The credentials of a kind of device, and where they may go.
#[derive(Clone)]
pub struct Credentials {
    /// The user a digest challenge is answered as.
    pub digest_user: String,
    /// The user a basic challenge is answered as.
    pub basic_user: String,
    /// None: challenges are not answered (the 401 is the answer).
    pub password: Option<SecretString>,
    /// Where connections may go at all (see [`super::DeviceNetworks`]).
    pub networks: std::sync::Arc<super::DeviceNetworks>,
}

impl Credentials {
    /// The same, without the password: for hosts that are polled but not trusted with it.
    pub fn without_password(&self) -> Self {
        Self {
            password: None,
            ..self.clone()
        }
    }
}

/// Why a device poll failed; its `outcome` label in `devicehub_polls_total`.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{host} did not answer within the timeout")]
    Timeout { host: String },
    #[error("cannot reach {host}: {error}")]
    Connection { host: String, error: String },
    #[error("{host} answered {status}")]
    Status { host: String, status: u16 },
    #[error("{host}: {message}")]
    Malformed { host: String, message: String },
    #[error("{host} sent an answer over {limit} bytes; it was not read")]
    TooLarge { host: String, limit: usize },
    #[error("{host} is not on a device network (network.device_subnets); devicehub does not connect to it")]
    Refused { host: String },
}

impl DeviceError {
    pub fn outcome(&self) -> &'static str {
        match self {
            DeviceError::Timeout { .. } => "timeout",
            DeviceError::Connection { .. } => "connection",
            DeviceError::Status { .. } => "status",
            DeviceError::Malformed { .. } => "malformed",
            DeviceError::TooLarge { .. } => "too_large",
            DeviceError::Refused { .. } => "refused",
        }
    }

    /// A request of `host` that got no answer.
    pub fn of(host: &str, failure: HttpFailure) -> Self {
        let host = host.to_owned();
        match failure {
            HttpFailure::Timeout => DeviceError::Timeout { host },
            HttpFailure::Connection(error) => DeviceError::Connection { host, error },
            HttpFailure::Challenge(message) => DeviceError::Malformed { host, message },
            HttpFailure::NotADeviceNetwork => DeviceError::Refused { host },
        }
    }

    /// A response's body, read whole up to `limit` bytes (see [`super::read_capped`]).
    pub async fn body_of(
        host: &str,
        response: reqwest::Response,
        limit: usize,
    ) -> Result<Vec<u8>, Self> {
        super::read_capped(response, limit)
            .await
            .map_err(|e| DeviceError::of(host, HttpFailure::of(&e)))?
            .ok_or_else(|| DeviceError::TooLarge {
                host: host.to_owned(),
                limit,
            })
    }

    pub fn malformed(host: &str, message: impl Into<String>) -> Self {
        DeviceError::Malformed {
            host: host.to_owned(),
            message: message.into(),
        }
    }
}

/// A password, unless it is empty (an unset variable in docker-compose.yml): no password.
pub fn non_empty(password: Option<&SecretString>) -> Option<SecretString> {
    password.filter(|p| !p.expose_secret().is_empty()).cloned()
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpFailure {
    #[error("no answer within the timeout")]
    Timeout,
    #[error("{0}")]
    Connection(String),
    #[error("a challenge devicehub cannot answer: {0}")]
    Challenge(String),
    #[error("not on a device network (network.device_subnets)")]
    NotADeviceNetwork,
}

impl HttpFailure {
    pub fn of(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            HttpFailure::Timeout
        } else {
            HttpFailure::Connection(super::error_chain(e))
        }
    }
}

#[derive(Debug, Clone)]
enum HostAuth {
    None,
    Basic,
    Digest(Box<digest_auth::WwwAuthenticateHeader>),
}

/// One host (`address[:port]` over HTTP, or `https://address[:port]`), remembering how it wants
/// to be authenticated.
#[derive(Clone)]
pub struct AuthedHost {
    http: reqwest::Client,
    host: String,
    credentials: Arc<Credentials>,
    auth: Arc<Mutex<HostAuth>>,
    basic: Arc<std::sync::atomic::AtomicBool>,
}

impl AuthedHost {
    pub fn new(http: reqwest::Client, host: &str, credentials: Arc<Credentials>) -> Self {
        Self {
            http,
            host: host.to_owned(),
            credentials,
            auth: Arc::new(Mutex::new(HostAuth::None)),
            basic: Default::default(),
        }
    }

    /// Lets this host have the password by basic auth when it asks for it.
    pub fn allow_basic(&self) {
        self.basic.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn name(&self) -> &str {
        &self.host
    }

    /// The request for `path`, with the credentials the host asked for last.
    fn request(&self, method: &reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(
            method.clone(),
            format!("{}{path}", super::base_url(&self.host)),
        );
        let Some(password) = &self.credentials.password else {
            return request;
        };
        let mut auth = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *auth {
            HostAuth::None => request,
            HostAuth::Basic => {
                request.basic_auth(&self.credentials.basic_user, Some(password.expose_secret()))
            }
            HostAuth::Digest(challenge) => {
                let context = digest_auth::AuthContext::new_with_method(
                    self.credentials.digest_user.as_str(),
                    password.expose_secret(),
                    path,
                    None::<&[u8]>,
                    digest_auth::HttpMethod::from(method.as_str().to_owned()),
                );
                match challenge.respond(&context) {
                    Ok(header) => request.header(AUTHORIZATION, header.to_header_string()),
                    Err(_) => request,
                }
            }
        }
    }

    /// Sends `method path` (with a JSON body, if any); a 401 with a challenge is answered once
    /// when a password is set. `timeout` replaces the client's own for this request.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        timeout: Option<std::time::Duration>,
    ) -> Result<reqwest::Response, HttpFailure> {
        if !self.credentials.networks.allows(&self.host) {
            return Err(HttpFailure::NotADeviceNetwork);
        }
        let build = || {
            let mut request = self.request(&method, path);
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            request
        };
        let response = build().send().await.map_err(|e| HttpFailure::of(&e))?;
        if response.status() != reqwest::StatusCode::UNAUTHORIZED
            || self.credentials.password.is_none()
        {
            return Ok(response);
        }
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim()
            .to_owned();
        let auth = if challenge
            .get(..7)
            .is_some_and(|s| s.eq_ignore_ascii_case("digest "))
        {
            digest_auth::parse(&challenge)
                .map(|c| HostAuth::Digest(Box::new(c)))
                .map_err(|e| HttpFailure::Challenge(e.to_string()))?
        } else if self.basic.load(std::sync::atomic::Ordering::Relaxed) {
            HostAuth::Basic
        } else {
            // Not a host devicehub gives its password in the clear: the 401 is the answer.
            return Ok(response);
        };
        *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = auth;
        build().send().await.map_err(|e| HttpFailure::of(&e))
    }
}
