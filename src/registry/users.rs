use sqlx::PgPool;

use super::{is_unique_violation, RegistryError};
use crate::domain::Role;

#[derive(Debug, sqlx::FromRow)]
pub struct StoredUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

pub async fn create(
    pool: &PgPool,
    username: &str,
    password_hash: &str,
    role: Role,
) -> Result<(), RegistryError> {
    sqlx::query("INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3)")
        .bind(username)
        .bind(password_hash)
        .bind(role)
        .execute(pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                RegistryError::Conflict(format!("user {username:?} already exists"))
            } else {
                e.into()
            }
        })?;
    Ok(())
}

pub async fn find(pool: &PgPool, username: &str) -> Result<Option<StoredUser>, sqlx::Error> {
    sqlx::query_as::<_, StoredUser>(
        "SELECT username, password_hash, role FROM users WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(pool)
    .await
}
