use std::sync::Arc;

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use utoipa::ToSchema;
use validator::Validate;

use crate::auth::{verify_password, Auth, Session, Viewer};
use crate::configuration::Settings;
use crate::domain::Role;
use crate::error::{ApiError, ErrorBody};
use crate::registry::refresh::{self, Issued, Rotation};
use crate::registry::users;

/// The HttpOnly cookie that carries the refresh token for browsers (sent only to /api/auth).
pub const REFRESH_COOKIE: &str = "devicehub_refresh";

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
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Exchanged for the next access token at `POST /api/auth/refresh`, once: each refresh
    /// returns a new one. Browsers get it as the HttpOnly cookie `devicehub_refresh` too.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

/// `POST /api/auth/refresh` and `/api/auth/logout` body; without it, the `devicehub_refresh`
/// cookie is used.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: Option<String>,
}

/// `GET /api/auth/me`.
#[derive(Serialize, ToSchema)]
pub struct Me {
    pub username: String,
    pub role: Role,
}

/// Tokens settings the handlers need.
#[derive(Clone)]
pub struct TokenLifetimes {
    /// How refresh tokens rotate (their lifetime, the reuse grace, the successors' key).
    pub rotation: refresh::RotationRules,
}

impl TokenLifetimes {
    pub fn from_settings(settings: &Settings) -> Self {
        // The successors' key, derived from the JWT secret (without one auth is off and no
        // refresh token is issued).
        let mut key = Sha256::new();
        key.update(b"devicehub refresh successor\0");
        if let Some(secret) = &settings.auth.jwt_secret {
            key.update(secret.expose_secret().as_bytes());
        }
        Self {
            rotation: refresh::RotationRules {
                ttl_secs: settings.auth.refresh_ttl_secs,
                reuse_grace_secs: settings.auth.refresh_reuse_grace_s,
                successor_key: key.finalize().into(),
            },
        }
    }
}

/// The answer to a login or refresh: both tokens in the body, the refresh token in the cookie.
fn tokens(
    req: &HttpRequest,
    access_token: String,
    expires_in: u64,
    refresh: Issued,
) -> HttpResponse {
    // Rounded up: a token issued a moment ago still has its whole lifetime.
    let left_ms = (refresh.expires_at - chrono::Utc::now()).num_milliseconds();
    let refresh_expires_in = (left_ms.max(0) as u64).div_ceil(1000);
    HttpResponse::Ok()
        .cookie(refresh_cookie(
            req,
            refresh.token.clone(),
            CookieDuration::seconds(refresh_expires_in as i64),
        ))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in,
            refresh_token: refresh.token,
            refresh_expires_in,
        })
}

/// HttpOnly, SameSite=Strict, only for /api/auth; Secure when the request came over HTTPS
/// (directly or, per `X-Forwarded-Proto`, through a proxy).
fn refresh_cookie(req: &HttpRequest, value: String, max_age: CookieDuration) -> Cookie<'static> {
    let https = req.connection_info().scheme() == "https";
    Cookie::build(REFRESH_COOKIE, value)
        .path("/api/auth")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(https)
        .max_age(max_age)
        .finish()
}

/// The refresh token of a request: the body's (`{"refresh_token"}`; an empty body or `null` is
/// none),
/// else the cookie's. A body that is not such JSON is a 400.
fn presented(req: &HttpRequest, body: &[u8]) -> Result<Option<String>, ApiError> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<Option<super::Object<RefreshRequest>>>(body)
            .map_err(|e| {
                ApiError::BadRequest(format!("body is not valid JSON for this request: {e}"))
            })?
            .and_then(|b| b.0.refresh_token)
    };
    Ok(from_body
        .or_else(|| req.cookie(REFRESH_COOKIE).map(|c| c.value().to_owned()))
        .filter(|t| !t.is_empty() && t.len() <= 256))
}

/// Exchanges a username and password for a bearer token. Rate limited per client network, and
/// per account with backoff (see `auth::limits`).
///
/// Returns a short-lived access token and a refresh token (also set as the HttpOnly cookie
/// `devicehub_refresh`).
#[utoipa::path(post, operation_id = "login", path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, description = "Malformed JSON, or auth is disabled", body = ErrorBody),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 429, description = "Too many attempts", body = ErrorBody),
    ))]
pub async fn login(
    req: HttpRequest,
    auth: web::Data<Arc<Auth>>,
    lifetimes: web::Data<TokenLifetimes>,
    pool: web::Data<PgPool>,
    body: super::Body<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let issuer = auth.issuer_or_disabled()?;
    body.validate()?;
    let LoginRequest { username, password } = body.into_inner().0;
    let network = auth.client_network(&req);
    if let Some(network) = network {
        auth.login_limits().admit(network, &username)?;
    }
    let user = users::find(&pool, &username).await?;
    let password = SecretString::from(password);
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    // argon2 is deliberately slow: keep it off the async workers.
    let verified = web::block(move || verify_password(&password, stored.as_deref()))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    if let Some(network) = network {
        auth.login_limits()
            .record(network, &username, verified && user.is_some());
    }
    let user = match user {
        Some(user) if verified => user,
        known => {
            // Never the password; the username passed the single-line rule above.
            tracing::warn!(%username, known_user = known.is_some(),
                client = %network.map(|n| n.to_string()).unwrap_or_default(),
                "failed login");
            return Err(ApiError::Unauthorized("wrong username or password"));
        }
    };
    let (login, refresh) = refresh::start(
        &pool,
        (&user.username, user.token_generation),
        lifetimes.rotation.ttl_secs,
    )
    .await?;
    let token = issuer.issue(&Session {
        username: user.username.clone(),
        role: user.role,
        generation: user.token_generation,
        login: Some(login),
    })?;
    tracing::info!(username = %user.username, role = %user.role, "login");
    Ok(tokens(&req, token, issuer.ttl_secs(), refresh))
}

/// Exchanges a refresh token (the body's, else the `devicehub_refresh` cookie's) for a new
/// access token and a new refresh token. A refresh token works once: presented again within
/// `auth.refresh_reuse_grace_s` of its use (two tabs at once) it gets the same new refresh
/// token, later it revokes every token of its login (401), as does a change of the user's role
/// or password.
#[utoipa::path(post, operation_id = "refresh", path = "/api/auth/refresh", tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Optional: the cookie serves browsers"),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, description = "Malformed JSON, or auth is disabled", body = ErrorBody),
        (status = 401, description = "No, an unknown, expired, revoked or reused refresh token", body = ErrorBody),
    ))]
pub async fn refresh(
    req: HttpRequest,
    auth: web::Data<Arc<Auth>>,
    lifetimes: web::Data<TokenLifetimes>,
    pool: web::Data<PgPool>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let issuer = auth.issuer_or_disabled()?;
    let token = presented(&req, &body)?.ok_or(ApiError::Unauthorized(
        "no refresh token (body refresh_token or the devicehub_refresh cookie)",
    ))?;
    match refresh::rotate(&pool, &token, &lifetimes.rotation).await? {
        Rotation::Rotated {
            username,
            role,
            generation,
            login,
            next,
        } => {
            let access = issuer.issue(&Session {
                username,
                role,
                generation,
                login: Some(login),
            })?;
            Ok(tokens(&req, access, issuer.ttl_secs(), next))
        }
        Rotation::Reused => {
            tracing::warn!(
                client = %req.peer_addr().map(|p| p.ip().to_string()).unwrap_or_default(),
                "a used refresh token was presented again; its login is revoked"
            );
            Err(ApiError::Unauthorized(
                "this refresh token was already used; every token of its login is revoked, log in again",
            ))
        }
        Rotation::Refused => Err(ApiError::Unauthorized(
            "the refresh token is unknown, expired or revoked; log in again",
        )),
    }
}

/// Revokes the refresh token's login (the body's token, else the cookie's) and clears the
/// cookie. The login's access tokens and live streams stop working with it (in other API
/// processes within seconds).
#[utoipa::path(post, operation_id = "logout", path = "/api/auth/logout", tag = "auth",
    request_body(content = Option<RefreshRequest>, description = "Optional: the cookie serves browsers"),
    responses(
        (status = 200, body = super::Notice),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
    ))]
pub async fn logout(
    req: HttpRequest,
    auth: web::Data<Arc<Auth>>,
    pool: web::Data<PgPool>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    if let Some(token) = presented(&req, &body)? {
        if let Some(login) = refresh::revoke_family_of(&pool, &token).await? {
            auth.logged_out(login);
        }
    }
    Ok(HttpResponse::Ok()
        .cookie(refresh_cookie(&req, String::new(), CookieDuration::ZERO))
        .json(super::Notice {
            message: "logged out".into(),
        }))
}

/// The caller: user name and role.
#[utoipa::path(get, operation_id = "me", path = "/api/auth/me", tag = "auth",
    responses(
        (status = 200, body = Me, example = json!({"username": "admin", "role": "admin"})),
    ),
    security(("bearer" = [])))]
pub async fn me(caller: Viewer) -> HttpResponse {
    HttpResponse::Ok().json(Me {
        username: caller.caller.username,
        role: caller.caller.role,
    })
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/auth/login").post(login))
        .service(web::resource("/auth/refresh").post(refresh))
        .service(web::resource("/auth/logout").post(logout))
        .service(web::resource("/auth/me").get(me));
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(login, refresh, logout, me), tags((name = "auth", description = "Tokens")))]
pub struct Doc;
