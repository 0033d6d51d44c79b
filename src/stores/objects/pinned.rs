//! S3 over a pinned certificate: a self-hosted S3 server (MinIO, Garage, s3s) behind its own
//! self-signed certificate, trusted as `s3.ca_file` or `s3.fingerprint` pins it (see
//! [`crate::clients::pinning`]). The AWS SDK's own HTTP client takes a trust store but no
//! certificate verifier, and rustls refuses a `CA:TRUE` certificate as a server's own, so the SDK
//! sends through reqwest here (devicehub's HTTP client elsewhere), configured with the pinning
//! verifier. devicehub's S3 requests carry their bodies in memory and its answers are read
//! whole, so nothing streams.

use aws_sdk_s3::primitives::SdkBody;
use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;

use crate::clients::pinning::Trust;

/// The SDK's requests, sent by reqwest.
#[derive(Debug, Clone)]
struct Reqwest(reqwest::Client);

fn other(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ConnectorError {
    ConnectorError::other(e.into(), None)
}

impl HttpConnector for Reqwest {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let (parts, body) = request.try_into_http1x().map_err(other)?.into_parts();
            let body = body
                .bytes()
                .map(<[u8]>::to_vec)
                .ok_or_else(|| other("a streaming request body (devicehub sends none)"))?;
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| match e.is_timeout() {
                    true => ConnectorError::timeout(e.into()),
                    false => ConnectorError::io(e.into()),
                })?;
            let mut answer = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let body = response
                .bytes()
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            let answer = answer.body(SdkBody::from(body)).map_err(other)?;
            HttpResponse::try_from(answer).map_err(other)
        })
    }
}

/// An HTTP client for the SDK that trusts `trust`.
pub fn client(trust: &Trust) -> anyhow::Result<SharedHttpClient> {
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(trust.client_config()?)
        .user_agent(concat!("devicehub/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let connector = SharedHttpConnector::new(Reqwest(http));
    Ok(http_client_fn(move |_, _| connector.clone()))
}
