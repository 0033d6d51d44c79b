//! Connecting to PostgreSQL: create the database when missing, wait for the server at start-up,
//! and apply the embedded migrations.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::configuration::DatabaseSettings;

/// The migrations in `migrations/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// PostgreSQL's SQLSTATE for "database already exists" (another replica won the race).
const DUPLICATE_DATABASE: &str = "42P04";

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("invalid database settings: {0}")]
    Settings(#[from] crate::configuration::SettingsError),
    #[error("cannot reach PostgreSQL at {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create database {name:?}: {source}")]
    Create {
        name: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// How long start-up waits for PostgreSQL (it may still be starting, e.g. under compose).
const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// Connects (creating the database if configured to), migrates, and returns the pool.
pub async fn prepare(settings: &DatabaseSettings) -> Result<PgPool, DatabaseError> {
    let options = settings.connect_options()?;
    if settings.create_if_missing {
        create_if_missing(&options).await?;
    }
    let pool = connect(settings, options).await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// A pool without migrating (for commands that must not change the schema).
pub async fn connect(
    settings: &DatabaseSettings,
    options: PgConnectOptions,
) -> Result<PgPool, DatabaseError> {
    let target = describe(&options);
    let options = options.log_statements(tracing::log::LevelFilter::Debug);
    let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
    loop {
        let attempt = pool_options(settings).connect_with(options.clone()).await;
        match attempt {
            Ok(pool) => return Ok(pool),
            Err(e) if is_transient(&e) && tokio::time::Instant::now() < deadline => {
                tracing::warn!(%target, error = %e, "PostgreSQL not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(source) => return Err(DatabaseError::Connect { target, source }),
        }
    }
}

/// Pool settings shared by every pool devicehub opens.
pub fn pool_options(settings: &DatabaseSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout())
        // A ping before every checkout doubles the round trips of a simple read; a broken
        // connection surfaces on its query instead, and sqlx drops it from the pool.
        .test_before_acquire(false)
}

/// Worth waiting for at start-up: no connection yet, or a server that is starting, stopping or
/// recovering (SQLSTATE class 57: 57P03 "the database system is starting up", started together
/// with devicehub by compose or a service manager).
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| c.starts_with("57")),
        _ => false,
    }
}

fn describe(options: &PgConnectOptions) -> String {
    format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    )
}

async fn create_if_missing(options: &PgConnectOptions) -> Result<(), DatabaseError> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let maintenance = options.clone().database("postgres");
    let target = describe(&maintenance);
    let mut conn = retry_connect(&maintenance)
        .await
        .map_err(|source| DatabaseError::Connect { target, source })?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .map_err(|source| DatabaseError::Create {
                name: name.clone(),
                source,
            })?;
    if !exists {
        // Identifiers cannot be bound; quote it, doubling any embedded quote.
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&sql).execute(&mut conn).await {
            Ok(_) => tracing::info!(database = %name, "created database"),
            Err(e)
                if e.as_database_error().and_then(|d| d.code()).as_deref()
                    == Some(DUPLICATE_DATABASE) => {}
            Err(source) => return Err(DatabaseError::Create { name, source }),
        }
    }
    let _ = conn.close().await;
    Ok(())
}

async fn retry_connect(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
    loop {
        match PgConnection::connect_with(options).await {
            Err(e) if is_transient(&e) && tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "PostgreSQL not reachable yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            other => return other,
        }
    }
}

/// The database URL with any password masked, for messages.
pub fn redacted_url(settings: &DatabaseSettings) -> String {
    let url = settings.url.expose_secret();
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}@{}", &url[..scheme + 3], user, &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
