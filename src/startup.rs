//! Builds the whole application from its settings. `Application::build` binds the listener (port
//! 0 picks a free one) so that callers, tests included, learn the real port before serving.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::ErrorHandlers;
use actix_web::{web, App, HttpServer};
use sqlx::PgPool;
use tracing_actix_web::TracingLogger;

use crate::auth::Auth;
use crate::collector::{self, Counters};
use crate::configuration::{Role, Settings};
use crate::error::{json_error, json_error_page, path_error, query_error};
use crate::ingest::mqtt::Publisher;
use crate::routes::Stores;
use crate::sinks::archive::ObjectStore;
use crate::sinks::influxdb::InfluxClient;
use crate::{database, routes};

pub struct Application {
    port: u16,
    pool: PgPool,
    server: Option<Server>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.check()?;
        if !settings.auth.enabled {
            tracing::warn!(
                "auth is DISABLED: every API caller is treated as an admin; \
                 run like this only on a trusted network"
            );
        }
        for role in [Role::Pollers, Role::Analytics] {
            if settings.runs(role) {
                tracing::warn!(
                    ?role,
                    "this role is not available in this version yet; ignoring it"
                );
            }
        }
        let pool = database::prepare(&settings.database).await?;
        let publisher = Publisher::start(
            &settings.mqtt,
            &format!(
                "{}-pub-{}",
                settings.mqtt.client_id,
                uuid::Uuid::new_v4().simple()
            ),
        )?;
        let influx = InfluxClient::new(&settings.influxdb)?;
        if let Err(e) = influx.ensure_database().await {
            tracing::warn!(error = %e, "cannot create the InfluxDB database yet");
        }
        let archive = ObjectStore::from_settings(&settings)?;
        if let Err(e) = archive.prepare().await {
            tracing::warn!(error = %e, "the archive is not writable yet; the collector will retry");
        }
        let counters = settings
            .runs(Role::Collector)
            .then(|| Arc::new(Counters::default()));
        if let Some(counters) = &counters {
            collector::start(
                &settings,
                pool.clone(),
                publisher.clone(),
                archive.clone(),
                counters.clone(),
            )
            .await?;
            tracing::info!("collector started");
        }
        let stores = Stores {
            influx,
            archive,
            publisher,
            iot_prefix: settings.mqtt.iot_prefix.clone(),
            ingest: counters,
        };
        if !settings.runs(Role::Api) {
            return Ok(Self {
                port: 0,
                pool,
                server: None,
            });
        }
        tokio::spawn(routes::commands::resend_queued(
            pool.clone(),
            stores.clone(),
        ));
        let listener = TcpListener::bind(settings.http.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.http.bind))?;
        let port = listener.local_addr()?.port();
        let server = serve(listener, pool.clone(), stores, &settings)?;
        tracing::info!(address = %listener_address(&settings, port), "devicehub API listening");
        Ok(Self {
            port,
            pool,
            server: Some(server),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Serves until SIGINT/SIGTERM, then finishes in-flight requests. Without the API role, the
    /// collector runs until the same signals.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        match self.server {
            Some(server) => server.await,
            None => shutdown_signal().await,
        }
    }
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

fn listener_address(settings: &Settings, port: u16) -> String {
    format!("{}:{port}", settings.http.bind.ip())
}

fn serve(
    listener: TcpListener,
    pool: PgPool,
    stores: Stores,
    settings: &Settings,
) -> anyhow::Result<Server> {
    let pool = web::Data::new(pool);
    let stores = web::Data::new(stores);
    let auth = web::Data::new(Arc::new(Auth::from_settings(&settings.auth)));
    let limit = settings.http.max_body_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(ErrorHandlers::new().default_handler(json_error_page))
            .wrap(TracingLogger::default())
            .app_data(
                web::JsonConfig::default()
                    .limit(limit)
                    .error_handler(json_error(limit)),
            )
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(web::PathConfig::default().error_handler(path_error))
            .app_data(web::PayloadConfig::new(limit))
            .app_data(pool.clone())
            .app_data(auth.clone())
            .app_data(stores.clone())
            .configure(routes::configure)
    })
    .listen(listener)?;
    if settings.http.workers > 0 {
        server = server.workers(settings.http.workers);
    }
    Ok(server.run())
}
