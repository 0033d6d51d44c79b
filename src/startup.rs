//! Builds the whole application from its settings. `Application::build` binds the listener (port
//! 0 picks a free one) so that callers, tests included, learn the real port before serving.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::ErrorHandlers;
use actix_web::{web, App, HttpServer};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing_actix_web::TracingLogger;

use crate::auth::Auth;
use crate::configuration::{Role, Settings};
use crate::error::{json_error, json_error_page, path_error, query_error};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::routes::{Probes, Stores};
use crate::stores::broker::Publisher;
use crate::stores::influxdb::InfluxClient;
use crate::stores::objects::ObjectStore;
use crate::supervisor::{Supervisor, Wave};
use crate::{collector, database, routes};

pub struct Application {
    port: u16,
    pool: PgPool,
    supervisor: Supervisor,
    grace: Duration,
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
        let pool = database::prepare(&settings.database).await?;
        let metrics = Arc::new(Metrics::new());
        let mut supervisor = Supervisor::new(metrics.clone());
        let publisher_id = publisher_client_id(&settings);
        let (publisher, connection) = Publisher::new(&settings.mqtt, &publisher_id)?;
        supervisor.spawn_once("mqtt publisher", Wave::Outputs, |shutdown| {
            connection.run(shutdown)
        });
        let influx = InfluxClient::new(&settings.influxdb)?;
        if let Err(e) = influx.ensure_database().await {
            tracing::warn!(error = %e, "cannot create the InfluxDB database yet");
        }
        let archive = ObjectStore::from_settings(&settings)?;
        if let Err(e) = archive.prepare().await {
            tracing::warn!(error = %e, "the archive is not writable yet; the collector will retry");
        }
        let grace = Duration::from_secs(settings.shutdown_grace_secs);
        let live =
            crate::live::Hub::new(settings.stream.max_clients, metrics.stream_clients.clone());
        // The inventory answers the API and gives the Shelly poller its hosts.
        let inventory = if settings.runs(Role::Api) || settings.runs(Role::Pollers) {
            Some(start_inventory(&settings, &archive, &mut supervisor)?)
        } else {
            None
        };
        let collector = settings.runs(Role::Collector);
        let mut handoff = None;
        if collector {
            let stores = collector::Stores {
                pool: pool.clone(),
                influx: influx.clone(),
                objects: archive.clone(),
                publisher: publisher.clone(),
                live: live.clone(),
            };
            handoff = Some(collector::start(&settings, &stores, &mut supervisor, &metrics).await?);
            tracing::info!("collector started");
        }
        if let (true, Some(inventory)) = (settings.runs(Role::Pollers), &inventory) {
            start_pollers(
                &settings,
                (&pool, &archive, &metrics),
                (handoff.take(), inventory.clone()),
                &mut supervisor,
            )?;
        }
        drop(handoff);
        if settings.runs(Role::Analytics) {
            let metadata = match &inventory {
                Some(inventory) => inventory.metadata().clone(),
                None => {
                    let metadata =
                        crate::inventory::MetadataFile::load(&settings.inventory.metadata_csv)?;
                    let watched = metadata.clone();
                    supervisor.spawn("device metadata", Wave::Intake, move |shutdown| {
                        watched.clone().watch(Duration::from_secs(5), shutdown)
                    });
                    metadata
                }
            };
            let analytics = crate::analytics::Analytics::new(
                &settings,
                pool.clone(),
                archive.clone(),
                metadata,
            );
            let metrics = metrics.clone();
            supervisor.spawn("analytics", Wave::Intake, move |shutdown| {
                analytics.clone().run_on_schedule(metrics.clone(), shutdown)
            });
            tracing::info!(
                silver_every_s = settings.analytics.silver_every_s,
                gold_every_s = settings.analytics.gold_every_s,
                "analytics started"
            );
        }
        let probes = Probes {
            influx: influx.clone(),
            archive: archive.clone(),
            publisher: publisher.clone(),
            metrics: metrics.clone(),
        };
        let listener = TcpListener::bind(settings.http.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.http.bind))?;
        let port = listener.local_addr()?.port();
        let stores = match (settings.runs(Role::Api), inventory) {
            (true, Some(inventory)) => {
                let outbox = Outbox::new(
                    pool.clone(),
                    publisher.clone(),
                    settings.mqtt.iot_prefix.clone(),
                    crate::sources::shelly::ShellyClient::new(&settings.shelly)?,
                );
                let listener = (pool.clone(), live.clone());
                supervisor.spawn("live updates", Wave::Intake, move |shutdown| {
                    crate::live::listen::run(listener.0.clone(), listener.1.clone(), shutdown)
                });
                if !collector {
                    // Readings come from ingest where the collector runs; here, from the broker.
                    let relay = Arc::new(crate::live::relay::Relay::new(
                        &settings.mqtt,
                        &format!("{}-live-{}", settings.mqtt.client_id, host_name()),
                        live.clone(),
                    )?);
                    supervisor.spawn("live readings relay", Wave::Intake, move |shutdown| {
                        relay.clone().run(shutdown)
                    });
                }
                let resend = outbox.clone();
                supervisor.spawn("command resend", Wave::Intake, move |shutdown| {
                    resend.clone().resend_until(shutdown)
                });
                Some(Stores {
                    influx,
                    archive,
                    publisher,
                    outbox,
                    metrics,
                    inventory,
                    cameras: crate::sources::hikvision::CameraClient::new(&settings.hikvision)?,
                    collector,
                    live: live.clone(),
                    stream: settings.stream.clone(),
                })
            }
            _ => None,
        };
        let what = if stores.is_some() {
            "devicehub API listening"
        } else {
            "health and metrics listening (no api role)"
        };
        let server = serve(listener, pool.clone(), (probes, stores), &settings)?;
        supervisor.spawn_once("api", Wave::Intake, |shutdown| {
            run_server(server, live, shutdown)
        });
        tracing::info!(address = %listener_address(&settings, port), "{what}");
        Ok(Self {
            port,
            pool,
            supervisor,
            grace,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs until SIGTERM or SIGINT, then stops in order within `shutdown_grace_secs`: the API
    /// finishes its requests and the intake what it holds, the sinks their batches, the
    /// publisher its queue. An error names the task that stopped devicehub on its own.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.supervisor.run(self.grace).await?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The device metadata (a malformed file stops start-up here, naming its line; changes are
/// reloaded) and the DuckDB inventory over the lake's router snapshots.
fn start_inventory(
    settings: &Settings,
    archive: &ObjectStore,
    supervisor: &mut Supervisor,
) -> anyhow::Result<crate::inventory::Inventory> {
    let metadata = crate::inventory::MetadataFile::load(&settings.inventory.metadata_csv)?;
    tracing::info!(devices = metadata.current().len(), "device metadata loaded");
    let watched = metadata.clone();
    supervisor.spawn("device metadata", Wave::Intake, move |shutdown| {
        watched.clone().watch(Duration::from_secs(5), shutdown)
    });
    Ok(crate::inventory::Inventory::new(
        archive.clone(),
        metadata,
        settings.inventory.history_days,
    )?)
}

/// The pollers' part: the Mikrotik poller when `mikrotik.url` is set, the HikVision cameras, and
/// the Shelly pollers of the configured hosts and of those the inventory finds (readings and
/// events go to the collector's ingest).
fn start_pollers(
    settings: &Settings,
    (pool, archive, metrics): (&PgPool, &ObjectStore, &Arc<Metrics>),
    (handoff, inventory): (
        Option<tokio::sync::mpsc::Sender<crate::pipeline::Incoming>>,
        crate::inventory::Inventory,
    ),
    supervisor: &mut Supervisor,
) -> anyhow::Result<()> {
    let mikrotik = settings.mikrotik.url.as_deref().filter(|u| !u.is_empty());
    if let Some(url) = mikrotik {
        let poller = crate::sources::mikrotik::MikrotikPoller::new(
            &settings.mikrotik,
            url,
            archive.clone(),
            (pool.clone(), inventory.clone()),
        )?;
        supervisor.spawn("mikrotik poller", Wave::Intake, move |shutdown| {
            poller.clone().run(shutdown)
        });
        tracing::info!(url, "Mikrotik poller started");
    }
    let Some(handoff) = handoff else {
        // Readings go through ingest, which the collector runs.
        for (setting, hosts) in [
            ("shelly.hosts", &settings.shelly.hosts),
            ("hikvision.hosts", &settings.hikvision.hosts),
        ] {
            if !hosts.is_empty() {
                anyhow::bail!(
                    "{setting} is set, but the pollers hand what they read to the collector: \
                     run the pollers role together with the collector role"
                );
            }
        }
        if mikrotik.is_some() {
            tracing::warn!(
                "the Shelly devices the inventory finds are not polled: the Shelly poller runs \
                 in a process with both the pollers and the collector roles"
            );
        }
        return Ok(());
    };
    for host in settings
        .hikvision
        .hosts
        .iter()
        .map(|h| h.trim())
        .filter(|h| !h.is_empty())
    {
        let camera = crate::sources::hikvision::Camera::new(
            &settings.hikvision,
            host,
            &settings.mqtt.qs_prefix,
            (pool.clone(), handoff.clone(), metrics.clone()),
        )?;
        supervisor.spawn(format!("camera {host}"), Wave::Intake, move |shutdown| {
            camera.clone().run(shutdown)
        });
        tracing::info!(host, "HikVision camera started");
    }
    if settings.shelly.hosts.is_empty() && mikrotik.is_none() {
        return Ok(());
    }
    let context = crate::sources::shelly::ShellyContext::new(
        &settings.shelly,
        pool.clone(),
        handoff,
        metrics.clone(),
    )?;
    let fleet =
        crate::sources::shelly::ShellyFleet::new(&settings.shelly, context, Some(inventory));
    supervisor.spawn("shelly pollers", Wave::Intake, move |shutdown| {
        fleet.clone().run(shutdown)
    });
    tracing::info!(
        configured = settings.shelly.hosts.len(),
        from_inventory = mikrotik.is_some(),
        "Shelly pollers started"
    );
    Ok(())
}

/// Serves until told to stop, then ends the live streams and lets other requests in flight
/// finish.
async fn run_server(
    server: Server,
    live: crate::live::Hub,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let handle = server.handle();
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => result?,
        () = shutdown.cancelled() => {
            live.close();
            let (_, result) = tokio::join!(handle.stop(true), server);
            result?;
        }
    }
    Ok(())
}

fn listener_address(settings: &Settings, port: u16) -> String {
    format!("{}:{port}", settings.http.bind.ip())
}

/// The HTTP server: the whole API with `stores`, else only the probes and `/metrics`.
fn serve(
    listener: TcpListener,
    pool: PgPool,
    (probes, stores): (Probes, Option<Stores>),
    settings: &Settings,
) -> anyhow::Result<Server> {
    let pool = web::Data::new(pool);
    let probes = web::Data::new(probes);
    let stores = stores.map(web::Data::new);
    let auth = web::Data::new(Arc::new(Auth::from_settings(&settings.auth)));
    let lifetimes = web::Data::new(routes::auth::TokenLifetimes::from_settings(settings));
    let cors_origins = settings.http.cors_origins.clone();
    let limit = settings.http.max_body_bytes;
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(ErrorHandlers::new().default_handler(json_error_page))
            .wrap(actix_web::middleware::from_fn(crate::access::observe))
            .wrap(cors(&cors_origins))
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
            .app_data(lifetimes.clone())
            .app_data(probes.clone())
            .configure(|cfg| match &stores {
                Some(stores) => {
                    cfg.app_data(stores.clone());
                    routes::configure(cfg);
                }
                None => routes::configure_probes(cfg),
            })
    })
    .listen(listener)?
    // devicehub's supervisor handles the signals, and stops the server in its turn.
    .disable_signals()
    .shutdown_timeout(settings.shutdown_grace_secs);
    if settings.http.workers > 0 {
        server = server.workers(settings.http.workers);
    }
    Ok(server.run())
}

/// CORS for the configured origins (none: browsers on other origins get no CORS headers and
/// their preflights are refused): credentials allowed (the refresh cookie), the API's methods and
/// headers, and the response headers a front end reads (request ids, totals for paging).
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::ACCEPT,
            actix_web::http::header::HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            crate::access::REQUEST_ID,
            actix_web::http::header::HeaderName::from_static("x-total-count"),
            actix_web::http::header::LINK,
        ])
        .supports_credentials()
        // Another origin's request passes without CORS headers (the browser then keeps the
        // answer from its page), so that same-origin pages, which send `Origin` too, and
        // clients that are not browsers are served as ever.
        .block_on_origin_mismatch(false)
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin.trim_end_matches('/'));
    }
    cors
}

/// The publisher's client id. Its session is persistent (commands, ACKs and dead letters queued
/// while the broker restarts are sent once it is back), so the id is stable across restarts of
/// this process: `{mqtt.client_id}-pub` beside the collector (whose `client_id` is already one
/// per replica), `{mqtt.client_id}-pub-{host name}` in a process without it (API replicas).
fn publisher_client_id(settings: &Settings) -> String {
    if settings.runs(Role::Collector) {
        return format!("{}-pub", settings.mqtt.client_id);
    }
    format!("{}-pub-{}", settings.mqtt.client_id, host_name())
}

/// This machine's (or pod's) name, for client ids that must differ between API replicas.
fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "api".into())
}
