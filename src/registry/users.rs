use sqlx::PgPool;

use super::is_unique_violation;
use crate::domain::Role;

#[derive(Debug, sqlx::FromRow)]
pub struct StoredUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub async fn create(
    pool: &PgPool,
    username: &str,
    password_hash: &str,
    role: Role,
) -> Result<(), UserError> {
    sqlx::query("INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3)")
        .bind(username)
        .bind(password_hash)
        .bind(role)
        .execute(pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                UserError::Exists(username.to_owned())
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
