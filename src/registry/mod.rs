//! The device registry in PostgreSQL: one module per table group, each a set of verbs over a
//! `PgPool`. Queries are bound, never built from request text.

pub mod alerts;
pub mod configs;
pub mod devices;
pub mod events;
pub mod stats;
pub mod users;

use crate::error::ApiError;

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

/// Maps "the device row is missing" to 404 for writes into child tables.
pub(crate) fn missing_device(device_id: &str) -> impl FnOnce(sqlx::Error) -> ApiError + '_ {
    move |e| {
        if is_foreign_key_violation(&e) {
            ApiError::not_found("device", device_id)
        } else {
            e.into()
        }
    }
}
