//! The device registry in PostgreSQL: one module per table group, each a set of verbs over a
//! `PgPool`. Queries are bound, never built from request text. Storage speaks its own error,
//! [`RegistryError`]; the API maps it to statuses in one place (`error.rs`).

pub mod alerts;
pub mod commands;
pub mod configs;
pub mod devices;
pub mod events;
pub mod quarantine;
pub mod refresh;
pub mod sequences;
pub mod stats;
pub mod users;

use serde::Serialize;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The row asked for (or the device a row belongs to) does not exist.
    #[error("{what} not found")]
    NotFound {
        what: &'static str,
        details: serde_json::Value,
    },
    /// The row exists already.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl RegistryError {
    /// `what` with the id asked for, as `{"<what>_id": id}`.
    pub fn not_found(what: &'static str, id: impl Serialize) -> Self {
        let details = serde_json::json!({ format!("{what}_id").replace(' ', "_"): id });
        RegistryError::NotFound { what, details }
    }
}

/// PostgreSQL's SQLSTATE for a unique violation.
const UNIQUE_VIOLATION: &str = "23505";
/// PostgreSQL's SQLSTATE for a foreign-key violation.
const FOREIGN_KEY_VIOLATION: &str = "23503";

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    e.as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    sqlstate(e).as_deref() == Some(UNIQUE_VIOLATION)
}

pub(crate) fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    sqlstate(e).as_deref() == Some(FOREIGN_KEY_VIOLATION)
}

/// Maps "the device row is missing" to not found, for writes into child tables.
pub(crate) fn missing_device(device_id: &str) -> impl FnOnce(sqlx::Error) -> RegistryError + '_ {
    move |e| {
        if is_foreign_key_violation(&e) {
            RegistryError::not_found("device", device_id)
        } else {
            e.into()
        }
    }
}

/// How many rows match in all, for a page of `len` rows: a page that is not full shows the
/// end, so its total is known (no second query for small listings); else `count` is asked.
pub(crate) async fn total_of(
    len: usize,
    page: crate::domain::Page,
    count: impl std::future::Future<Output = Result<i64, sqlx::Error>>,
) -> Result<i64, sqlx::Error> {
    let len = len as i64;
    if len < page.limit && (len > 0 || page.offset == 0) {
        return Ok(page.offset.saturating_add(len));
    }
    count.await
}
