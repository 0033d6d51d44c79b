//! User management (admin): list, create, change role or password, delete. A change reaches
//! tokens already issued within [`crate::auth::USER_CHECK_INTERVAL`] (at once in this process).

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use secrecy::SecretString;
use serde::Deserialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use validator::{Validate, ValidationError};

use super::Notice;
use crate::auth::{hash_password, Admin, Auth};
use crate::domain::Role;
use crate::error::{ApiError, ErrorBody};
use crate::registry::users::{self, User};

/// 1 to 64 characters of letters, digits and `. _ - @` (as `devicehub user add` takes).
pub fn username_rule(username: &str) -> Result<(), ValidationError> {
    let ok = (1..=64).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new("username")
            .with_message("1 to 64 characters of letters, digits and . _ - @".into()))
    }
}

/// Passwords: 8 to 1024 characters (`auth::MIN_PASSWORD_CHARS`, as `hash_password` takes).
#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "ops-anna", "password": "a-long-password", "role": "operator"}))]
pub struct NewUser {
    #[validate(custom(function = "username_rule"))]
    #[schema(pattern = "^[A-Za-z0-9._@-]{1,64}$")]
    pub username: String,
    #[validate(length(min = 8, max = 1024))]
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 1024)]
    pub password: String,
    pub role: Role,
}

/// At least one of `role` and `password`.
#[derive(Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "viewer"}))]
pub struct UserPatch {
    pub role: Option<Role>,
    #[validate(length(min = 8, max = 1024))]
    #[schema(value_type = Option<String>, format = Password, min_length = 8, max_length = 1024)]
    pub password: Option<String>,
}

/// argon2 is deliberately slow: off the async workers.
async fn hash(password: String) -> Result<String, ApiError> {
    web::block(move || hash_password(&SecretString::from(password)))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(e.into()))
}

fn username(raw: &str) -> Result<&str, ApiError> {
    username_rule(raw).map_err(|_| {
        ApiError::invalid_parameter(crate::domain::Invalid {
            field: "username",
            message: "1 to 64 characters of letters, digits and . _ - @".into(),
        })
    })?;
    Ok(raw)
}

/// Lists users (admin).
#[utoipa::path(get, operation_id = "list_users", path = "/api/users", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Vec<User>),
        (status = 403, body = ErrorBody),
    ))]
pub async fn list(_: Admin, pool: web::Data<PgPool>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(users::list(&pool).await?))
}

/// Creates a user (admin).
#[utoipa::path(post, operation_id = "create_user", path = "/api/users", tag = "users", request_body = NewUser,
    security(("bearer" = [])),
    responses(
        (status = 201, body = User),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 422, description = "A field breaks a rule", body = ErrorBody),
    ))]
pub async fn create(
    admin: Admin,
    pool: web::Data<PgPool>,
    auth: web::Data<Arc<Auth>>,
    body: super::Body<NewUser>,
) -> Result<HttpResponse, ApiError> {
    body.validate()?;
    let NewUser {
        username,
        password,
        role,
    } = body.into_inner().0;
    let hashed = hash(password).await?;
    let user = users::create(&pool, &username, &hashed, role).await?;
    auth.forget(&username);
    tracing::info!(%username, %role, by = %admin.caller.username, "user created");
    Ok(HttpResponse::Created().json(user))
}

/// Changes a user's role and/or password (admin). Tokens issued to the user before the change
/// stop working.
#[utoipa::path(patch, operation_id = "update_user", path = "/api/users/{username}", tag = "users",
    params(("username" = String, Path)), request_body = UserPatch, security(("bearer" = [])),
    responses(
        (status = 200, body = User),
        (status = 400, description = "Malformed JSON or username", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, description = "A field breaks a rule, or neither is given", body = ErrorBody),
    ))]
pub async fn update(
    admin: Admin,
    pool: web::Data<PgPool>,
    auth: web::Data<Arc<Auth>>,
    path: web::Path<String>,
    body: super::Body<UserPatch>,
) -> Result<HttpResponse, ApiError> {
    let username = username(&path)?.to_owned();
    body.validate()?;
    let UserPatch { role, password } = body.into_inner().0;
    if role.is_none() && password.is_none() {
        return Err(ApiError::Validation(
            serde_json::json!({"body": ["give role, password or both"]}),
        ));
    }
    let hashed = match password {
        Some(password) => Some(hash(password).await?),
        None => None,
    };
    let user = users::update(&pool, &username, role, hashed.as_deref()).await?;
    auth.forget(&username);
    tracing::info!(%username, role = %user.role, password_changed = hashed.is_some(),
        by = %admin.caller.username, "user changed");
    Ok(HttpResponse::Ok().json(user))
}

/// Deletes a user (admin); not yourself. Their tokens stop working.
#[utoipa::path(delete, operation_id = "delete_user", path = "/api/users/{username}", tag = "users",
    params(("username" = String, Path)), security(("bearer" = [])),
    responses(
        (status = 200, body = Notice),
        (status = 400, description = "Malformed username", body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "You cannot delete yourself", body = ErrorBody),
    ))]
pub async fn delete(
    admin: Admin,
    pool: web::Data<PgPool>,
    auth: web::Data<Arc<Auth>>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let username = username(&path)?;
    if username == admin.caller.username {
        return Err(ApiError::Conflict(
            "you cannot delete yourself; another admin can".into(),
        ));
    }
    users::delete(&pool, username).await?;
    auth.forget(username);
    tracing::info!(%username, by = %admin.caller.username, "user deleted");
    Ok(HttpResponse::Ok().json(Notice {
        message: format!("user {username} deleted"),
    }))
}

/// This module's routes, under `/api`: one resource per path, so that a known path with the
/// wrong method answers 405.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/users").get(list).post(create))
        .service(
            web::resource("/users/{username}")
                .patch(update)
                .delete(delete),
        );
}

/// This module's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, create, update, delete), tags((name = "users", description = "API users and their roles (admin)")))]
pub struct Doc;
