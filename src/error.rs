//! The API's one error type. Every failure becomes `{"error": "...", "details": {...}}` with the
//! right status; bad input is never a 500 and never HTML.

use std::collections::BTreeMap;

use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::Invalid;
use crate::registry::RegistryError;

/// The JSON error body of every non-2xx response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": "device not found", "details": {"device_id": "device-404"}}))]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("{message}")]
    InvalidParameter {
        message: String,
        details: serde_json::Value,
    },
    #[error("authentication required")]
    Unauthorized(&'static str),
    #[error("forbidden")]
    Forbidden(String),
    #[error("{what} not found")]
    NotFound {
        what: &'static str,
        details: serde_json::Value,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("request body too large (limit {limit} bytes)")]
    PayloadTooLarge { limit: usize },
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("validation failed")]
    Validation(serde_json::Value),
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    /// A device the request needed answered wrongly or not at all (502).
    #[error("the device did not answer as expected: {0}")]
    BadGateway(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A bad path segment or query parameter: 400 naming the field.
    pub fn invalid_parameter(invalid: Invalid) -> Self {
        ApiError::InvalidParameter {
            message: format!("invalid parameter {}: {}", invalid.field, invalid.message),
            details: serde_json::json!({ invalid.field: [invalid.message] }),
        }
    }

    /// A body that parsed but broke a rule: 422 naming the field.
    pub fn invalid_body(invalid: Invalid) -> Self {
        ApiError::Validation(serde_json::json!({ invalid.field: [invalid.message] }))
    }
}

impl From<validator::ValidationErrors> for ApiError {
    fn from(errors: validator::ValidationErrors) -> Self {
        let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (field, errs) in errors.field_errors() {
            let messages = errs.iter().map(describe_validation_error).collect();
            fields.insert(field.to_string(), messages);
        }
        ApiError::Validation(serde_json::to_value(fields).unwrap_or_default())
    }
}

fn describe_validation_error(e: &validator::ValidationError) -> String {
    if let Some(message) = &e.message {
        return message.to_string();
    }
    match e.code.as_ref() {
        "length" => {
            let min = e.params.get("min").map(|v| v.to_string());
            let max = e.params.get("max").map(|v| v.to_string());
            match (min, max) {
                (Some(min), Some(max)) => format!("length must be between {min} and {max}"),
                (None, Some(max)) => format!("length must be at most {max}"),
                (Some(min), None) => format!("length must be at least {min}"),
                (None, None) => "invalid length".into(),
            }
        }
        code => format!("invalid ({code})"),
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::Unavailable("database")
            }
            _ => ApiError::Internal(e.into()),
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound { what, details } => ApiError::NotFound { what, details },
            RegistryError::Conflict(message) => ApiError::Conflict(message),
            RegistryError::Database(e) => e.into(),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::InvalidParameter { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let details = match self {
            ApiError::InvalidParameter { details, .. } | ApiError::NotFound { details, .. } => {
                Some(details.clone())
            }
            ApiError::Validation(fields) => Some(fields.clone()),
            ApiError::Unauthorized(reason) => Some(serde_json::json!({ "reason": reason })),
            ApiError::Forbidden(reason) => Some(serde_json::json!({ "reason": reason })),
            ApiError::PayloadTooLarge { limit } => {
                Some(serde_json::json!({ "limit_bytes": limit }))
            }
            ApiError::RateLimited { retry_after_secs } => {
                Some(serde_json::json!({ "retry_after_secs": retry_after_secs }))
            }
            ApiError::Unavailable(what) => Some(serde_json::json!({ "dependency": what })),
            ApiError::BadGateway(reason) => Some(serde_json::json!({ "reason": reason })),
            _ => None,
        };
        if let ApiError::Internal(e) = self {
            tracing::error!(error = ?e, "internal error");
        }
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::RateLimited { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.to_string(),
            details,
        })
    }
}

/// Malformed JSON is 400; JSON of the wrong shape (unknown or missing fields, wrong types) is
/// 422; a body over the limit is 413; a body that is not `application/json` is 415.
pub fn json_error(limit: usize) -> impl Fn(JsonPayloadError, &HttpRequest) -> actix_web::Error {
    move |err, _req| {
        let api = match &err {
            JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
                ApiError::PayloadTooLarge { limit }
            }
            JsonPayloadError::ContentType => {
                ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            JsonPayloadError::Deserialize(e) if e.is_data() => {
                ApiError::Validation(serde_json::json!({ "body": [e.to_string()] }))
            }
            JsonPayloadError::Deserialize(e) => {
                ApiError::BadRequest(format!("body is not valid JSON: {e}"))
            }
            other => ApiError::BadRequest(other.to_string()),
        };
        api.into()
    }
}

pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let message = match &err {
        QueryPayloadError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    };
    ApiError::InvalidParameter {
        message: format!("invalid query string: {message}"),
        details: serde_json::json!({ "query": [message] }),
    }
    .into()
}

pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    let message = match &err {
        PathError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    };
    ApiError::InvalidParameter {
        message: format!("invalid path: {message}"),
        details: serde_json::json!({ "path": [message] }),
    }
    .into()
}

/// Turns any error response that is not already JSON (unknown routes, wrong methods, errors
/// raised inside actix itself) into the JSON error body.
pub fn json_error_page<B: actix_web::body::MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = match status {
        StatusCode::NOT_FOUND => "no such resource".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this resource".to_owned(),
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let (req, old) = res.into_parts();
    let mut builder = HttpResponse::build(status);
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            builder.insert_header((name.clone(), value.clone()));
        }
    }
    let new = builder.json(ErrorBody {
        error: message,
        details: None,
    });
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, new).map_into_right_body(),
    ))
}
