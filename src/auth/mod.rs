//! Authentication and authorization: HS256 JWT bearer tokens, argon2 password hashes, roles
//! enforced by extractors so that a handler states the least role it needs in its signature.

pub mod limits;
mod password;
mod token;

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use sqlx::PgPool;

pub use password::{hash_password, verify_password, PasswordError, MIN_PASSWORD_CHARS};
pub use token::{now as token_now, Claims, Session, TokenIssuer};

use crate::configuration::AuthSettings;
use crate::domain::Role;
use crate::error::ApiError;
use crate::registry::users::{self, TokenState};

/// How long a user's role and token generation, and whether a login is still in, are taken from
/// memory before PostgreSQL is asked again: deleting a user, changing its role or password, or a
/// logout in another process reaches tokens already issued within this long (in this process, at
/// once).
pub const USER_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// Who is calling, as proven by their token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub username: String,
    pub role: Role,
    /// The token's claims (`None`: auth is off).
    pub token: Option<Claims>,
}

/// Shared auth state for the HTTP workers.
pub struct Auth {
    /// `None` when auth is switched off: every caller is then an anonymous admin.
    issuer: Option<TokenIssuer>,
    login_limits: limits::LoginLimits,
    /// `http.trusted_proxies`: whose forwarding headers name the client.
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Users as PostgreSQL last said (`None`: no such user), and when it said so.
    users: Mutex<HashMap<String, (Instant, Option<TokenState>)>>,
    /// Whether a login (refresh family) is still in, as PostgreSQL last said, and when.
    logins: Mutex<HashMap<uuid::Uuid, (Instant, bool)>>,
}

impl Auth {
    pub fn from_settings(settings: &AuthSettings, trusted_proxies: Vec<ipnet::IpNet>) -> Self {
        let issuer = if settings.enabled {
            settings
                .jwt_secret
                .as_ref()
                .map(|secret| TokenIssuer::new(secret, settings.token_ttl_secs))
        } else {
            None
        };
        Self {
            issuer,
            login_limits: limits::LoginLimits::new(settings.login_attempts_per_minute),
            trusted_proxies,
            users: Mutex::new(HashMap::new()),
            logins: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.issuer.is_some()
    }

    pub fn issuer(&self) -> Option<&TokenIssuer> {
        self.issuer.as_ref()
    }

    /// The issuer, for the routes that hand out tokens: with auth disabled there are none to
    /// give, and the caller is told so (400).
    pub fn issuer_or_disabled(&self) -> Result<&TokenIssuer, ApiError> {
        self.issuer.as_ref().ok_or_else(|| {
            ApiError::BadRequest(
                "authentication is disabled on this server; no token is needed".into(),
            )
        })
    }

    /// The client network of `req` (see [`limits::client_ip`]).
    pub fn client_network(&self, req: &HttpRequest) -> Option<limits::Network> {
        limits::client_ip(req, &self.trusted_proxies).map(limits::Network::of)
    }

    /// The login limits.
    pub fn login_limits(&self) -> &limits::LoginLimits {
        &self.login_limits
    }

    /// Forgets what it knew of `username`, so that this process applies a change at once.
    pub fn forget(&self, username: &str) {
        if let Ok(mut users) = self.users.lock() {
            users.remove(username);
        }
    }

    /// The caller of `req`: a valid token of a user that still exists, issued after its role
    /// or password last changed, with the role the user has now.
    async fn authenticate(
        &self,
        req: &HttpRequest,
        pool: Option<&PgPool>,
    ) -> Result<Caller, ApiError> {
        let Some(issuer) = &self.issuer else {
            return Ok(Caller {
                username: "anonymous".into(),
                role: Role::Admin,
                token: None,
            });
        };
        let value = req
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("missing Authorization header"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized(
                "expected Authorization: Bearer <token>",
            ))?;
        let claims = issuer.verify(token)?;
        self.caller_of(&claims, pool).await
    }

    /// The caller a verified token (or ticket) speaks for: its user must still exist, under the
    /// token generation it was issued with (no change of role or password since), and its login
    /// must not be logged out; the role is the user's now.
    pub async fn caller_of(
        &self,
        claims: &Claims,
        pool: Option<&PgPool>,
    ) -> Result<Caller, ApiError> {
        if let Some(login) = claims.sid {
            if !self.login_in(login, pool).await {
                return Err(ApiError::Unauthorized(
                    "this token's login was logged out; log in again",
                ));
            }
        }
        let role = match self.user(&claims.sub, pool).await {
            Some(Some(state)) if claims.gen == state.generation => state.role,
            Some(Some(_)) => {
                return Err(ApiError::Unauthorized(
                    "the token predates a change of this user's role or password; log in again",
                ))
            }
            Some(None) => return Err(ApiError::Unauthorized("the token's user no longer exists")),
            // PostgreSQL unreachable and nothing known: the token's own word.
            None => claims.role,
        };
        Ok(Caller {
            username: claims.sub.clone(),
            role,
            token: Some(claims.clone()),
        })
    }

    /// Whether `login` is still in (not logged out, not revoked), from memory when fresh; when
    /// PostgreSQL cannot say, what was known, else yes.
    async fn login_in(&self, login: uuid::Uuid, pool: Option<&PgPool>) -> bool {
        let remembered = self
            .logins
            .lock()
            .ok()
            .and_then(|logins| logins.get(&login).copied());
        if let Some((at, known)) = remembered {
            if at.elapsed() < USER_CHECK_INTERVAL || !known {
                return known;
            }
        }
        let Some(pool) = pool else {
            return remembered.is_none_or(|(_, known)| known);
        };
        match crate::registry::refresh::login_in(pool, login).await {
            Ok(known) => {
                if let Ok(mut logins) = self.logins.lock() {
                    if logins.len() > 10_000 {
                        logins.retain(|_, (at, _)| at.elapsed() < USER_CHECK_INTERVAL);
                    }
                    logins.insert(login, (Instant::now(), known));
                }
                known
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot check a token's login; using what is known");
                remembered.is_none_or(|(_, known)| known)
            }
        }
    }

    /// `login` was logged out here: this process refuses its tokens at once.
    pub fn logged_out(&self, login: uuid::Uuid) {
        if let Ok(mut logins) = self.logins.lock() {
            logins.insert(login, (Instant::now(), false));
        }
    }

    /// The claims of a stream ticket; `None` when auth is off (no ticket is needed then).
    pub fn verify_ticket(&self, ticket: Option<&str>) -> Result<Option<Claims>, ApiError> {
        let Some(issuer) = &self.issuer else {
            return Ok(None);
        };
        let ticket = ticket
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized(
                "missing ticket: ask POST /api/stream/ticket for one and pass it as ?ticket=",
            ))?;
        issuer.verify_ticket(ticket).map(Some)
    }

    /// The user's token state, from memory when fresh, else from PostgreSQL; `None` when
    /// PostgreSQL cannot say and nothing is remembered.
    async fn user(&self, username: &str, pool: Option<&PgPool>) -> Option<Option<TokenState>> {
        let remembered = self
            .users
            .lock()
            .ok()
            .and_then(|users| users.get(username).copied());
        if let Some((at, state)) = remembered {
            if at.elapsed() < USER_CHECK_INTERVAL {
                return Some(state);
            }
        }
        let looked_up = match pool {
            Some(pool) => users::token_state(pool, username).await,
            None => return remembered.map(|(_, state)| state),
        };
        match looked_up {
            Ok(state) => {
                if let Ok(mut users) = self.users.lock() {
                    if users.len() > 10_000 {
                        users.retain(|_, (at, _)| at.elapsed() < USER_CHECK_INTERVAL);
                    }
                    users.insert(username.to_owned(), (Instant::now(), state));
                }
                Some(state)
            }
            Err(e) => {
                // What is known stays for another interval: while PostgreSQL is away, one query
                // (and one warning) per user and interval, not per request.
                if let (Some((_, state)), Ok(mut users)) = (remembered, self.users.lock()) {
                    users.insert(username.to_owned(), (Instant::now(), state));
                }
                tracing::warn!(error = %e, "cannot check a token's user; using what is known");
                remembered.map(|(_, state)| state)
            }
        }
    }
}

/// The least role a route needs.
pub trait MinRole {
    const ROLE: Role;
}

pub enum ViewerRole {}
pub enum OperatorRole {}
pub enum AdminRole {}

impl MinRole for ViewerRole {
    const ROLE: Role = Role::Viewer;
}
impl MinRole for OperatorRole {
    const ROLE: Role = Role::Operator;
}
impl MinRole for AdminRole {
    const ROLE: Role = Role::Admin;
}

/// An extractor that admits callers holding at least `R`: 401 without a valid token, 403 with
/// a role too small.
pub struct Authorized<R: MinRole> {
    pub caller: Caller,
    _role: PhantomData<R>,
}

pub type Viewer = Authorized<ViewerRole>;
pub type Operator = Authorized<OperatorRole>;
pub type Admin = Authorized<AdminRole>;

impl<R: MinRole> FromRequest for Authorized<R> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { authorize::<R>(&req).await })
    }
}

async fn authorize<R: MinRole>(req: &HttpRequest) -> Result<Authorized<R>, ApiError> {
    let auth = req
        .app_data::<web::Data<Arc<Auth>>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("auth state missing")))?;
    let pool = req.app_data::<web::Data<PgPool>>().map(|p| p.get_ref());
    let caller = auth.authenticate(req, pool).await?;
    if caller.role < R::ROLE {
        return Err(ApiError::Forbidden(format!(
            "this action needs the {} role; you are {}",
            R::ROLE,
            caller.role
        )));
    }
    Ok(Authorized {
        caller,
        _role: PhantomData,
    })
}
