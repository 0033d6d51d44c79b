use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

use super::{is_unique_violation, RegistryError};
use crate::domain::Role;

#[derive(Debug, sqlx::FromRow)]
pub struct StoredUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub token_generation: i64,
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct User {
    pub username: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a token is checked against: the user's role now, and the token generation its tokens
/// must carry (it moves on a change of role or password; no clock is compared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenState {
    pub role: Role,
    pub generation: i64,
}

const COLUMNS: &str = "username, role, created_at, updated_at";

fn not_found(username: &str) -> RegistryError {
    RegistryError::NotFound {
        what: "user",
        details: serde_json::json!({ "username": username }),
    }
}

pub async fn create(
    pool: &PgPool,
    username: &str,
    password_hash: &str,
    role: Role,
) -> Result<User, RegistryError> {
    sqlx::query_as::<_, User>(&format!(
        "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
    ))
    .bind(username)
    .bind(password_hash)
    .bind(role)
    .fetch_one(pool)
    .await
    .map_err(|e| {
        if is_unique_violation(&e) {
            RegistryError::Conflict(format!("user {username:?} already exists"))
        } else {
            e.into()
        }
    })
}

pub async fn find(pool: &PgPool, username: &str) -> Result<Option<StoredUser>, sqlx::Error> {
    sqlx::query_as::<_, StoredUser>(
        "SELECT username, password_hash, role, token_generation FROM users WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(pool)
    .await
}

pub async fn list(pool: &PgPool) -> Result<Vec<User>, sqlx::Error> {
    sqlx::query_as::<_, User>(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))
        .fetch_all(pool)
        .await
}

pub async fn token_state(pool: &PgPool, username: &str) -> Result<Option<TokenState>, sqlx::Error> {
    let row: Option<(Role, i64)> =
        sqlx::query_as("SELECT role, token_generation FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(role, generation)| TokenState { role, generation }))
}

/// Changes the role and/or the password hash; when either really changes, the user's token
/// generation moves on and tokens issued before stop working.
pub async fn update(
    pool: &PgPool,
    username: &str,
    role: Option<Role>,
    password_hash: Option<&str>,
) -> Result<User, RegistryError> {
    sqlx::query_as::<_, User>(&format!(
        "UPDATE users SET role = COALESCE($2, role), password_hash = COALESCE($3, password_hash), \
         token_generation = CASE WHEN $3 IS NOT NULL OR $2 IS DISTINCT FROM role AND $2 IS NOT NULL \
                                 THEN nextval('token_generations') ELSE token_generation END, \
         updated_at = now() WHERE username = $1 RETURNING {COLUMNS}"
    ))
    .bind(username)
    .bind(role)
    .bind(password_hash)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| not_found(username))
}

pub async fn delete(pool: &PgPool, username: &str) -> Result<(), RegistryError> {
    let deleted = sqlx::query("DELETE FROM users WHERE username = $1")
        .bind(username)
        .execute(pool)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(not_found(username));
    }
    Ok(())
}
