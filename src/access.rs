//! What happens around every API answer: its request id (the one `tracing-actix-web` puts on the
//! request's span, so it is in every log line the request causes) is returned in the
//! `X-Request-Id` header, the answer is counted by method, route and status with its latency for
//! `/metrics`, and logged — at `debug` under the target `devicehub::access` (turn it on with
//! `log.level = "info,devicehub::access=debug"`), at `warn` for a 5xx other than a probe's.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use tracing_actix_web::RequestId;

use crate::routes::Probes;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The middleware (`actix_web::middleware::from_fn(access::observe)`), inside `TracingLogger`.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req.extensions().get::<RequestId>().copied();
    let stores = req.app_data::<web::Data<Probes>>().cloned();
    let mut res = next.call(req).await?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(id) = request_id {
        if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
            res.headers_mut().insert(REQUEST_ID, value);
        }
    }
    let status = res.status().as_u16();
    let route = res.request().match_pattern();
    let method = res.request().method().as_str();
    if let Some(stores) = stores {
        stores
            .metrics
            .http
            .request(method, route.clone(), status, seconds);
    }
    let route = route.as_deref().unwrap_or("unmatched");
    let ms = seconds * 1000.0;
    // Probes and scrapes come every few seconds, and their answer is their own report (a 503
    // from /readyz names what fails): debug only, whatever the status.
    let probe = matches!(route, "/health" | "/healthz" | "/readyz" | "/metrics");
    if status >= 500 && !probe {
        tracing::warn!(target: "devicehub::access", method, route, status, ms, "request failed");
    } else {
        tracing::debug!(target: "devicehub::access", method, route, status, ms, "request");
    }
    Ok(res)
}
