use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use validator::Validate;

use crate::auth::{verify_password, Auth};
use crate::error::{ApiError, ErrorBody};
use crate::registry::users;

#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "admin", "password": "change-me-please"}))]
pub struct LoginRequest {
    #[validate(
        length(min = 1, max = 64),
        custom(function = "crate::domain::single_line_rule")
    )]
    pub username: String,
    #[validate(length(min = 1, max = 1024))]
    #[schema(value_type = String, format = Password)]
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// Exchanges a username and password for a bearer token. Rate limited per client address.
#[utoipa::path(post, operation_id = "login", path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, description = "Malformed JSON, or auth is disabled", body = ErrorBody),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody),
    ))]
pub async fn login(
    req: HttpRequest,
    auth: web::Data<Arc<Auth>>,
    pool: web::Data<PgPool>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let Some(issuer) = auth.issuer() else {
        return Err(ApiError::BadRequest(
            "authentication is disabled on this server; no token is needed".into(),
        ));
    };
    if let Some(peer) = req.peer_addr() {
        auth.check_login_rate(peer.ip())?;
    }
    body.validate()?;
    let LoginRequest { username, password } = body.into_inner();
    let user = users::find(&pool, &username).await?;
    let password = SecretString::from(password);
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    // argon2 is deliberately slow: keep it off the async workers.
    let verified = web::block(move || verify_password(&password, stored.as_deref()))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let user = match user {
        Some(user) if verified => user,
        known => {
            // Never the password; the username passed the single-line rule above.
            tracing::warn!(%username, known_user = known.is_some(),
                client = %req.peer_addr().map(|p| p.ip().to_string()).unwrap_or_default(),
                "failed login");
            return Err(ApiError::Unauthorized("wrong username or password"));
        }
    };
    let token = issuer.issue(&user.username, user.role)?;
    tracing::info!(username = %user.username, role = %user.role, "login");
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token: token,
        token_type: "Bearer",
        expires_in: issuer.ttl_secs(),
    }))
}
