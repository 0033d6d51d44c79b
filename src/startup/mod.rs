//! Builds the whole application from its settings: `Application::build` opens what the roles
//! share ([`Common`]) and composes one start function per role (the collector and the API here,
//! the inventory, pollers and analytics in [`roles`], the HTTP server in [`server`]). It binds the
//! listener (port 0 picks a free one) so that callers, tests included, learn the real port
//! before serving.

mod roles;
mod server;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::configuration::{ProcessRole, Settings};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::routes::{ApiState, Probes};
use crate::stores::broker::Publisher;
use crate::stores::influxdb::InfluxClient;
use crate::stores::objects::ObjectStore;
use crate::supervisor::{Supervisor, Wave};
use crate::{collector, database};

pub struct Application {
    port: u16,
    pool: PgPool,
    supervisor: Supervisor,
    grace: Duration,
}

impl Application {
    /// Opens what every role shares, then starts each role this process runs (`roles`): the
    /// collector, the pollers, the analytics and the API; every process serves the probes.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        settings.check()?;
        // Settings that would do nothing here say so (a misspelt variable, another role's).
        for warning in settings.ignored(std::env::vars()) {
            tracing::warn!("{warning}");
        }
        if !settings.auth.enabled {
            tracing::warn!(
                "auth is DISABLED: every API caller is treated as an admin; \
                 run like this only on a trusted network"
            );
        }
        let metrics = Arc::new(Metrics::new());
        let mut supervisor = Supervisor::new(metrics.tasks.clone());
        let common = Common::open(&settings, metrics, &mut supervisor).await?;
        // The inventory answers the API and gives the Shelly poller its hosts.
        let inventory = if settings.runs(ProcessRole::Api) || settings.runs(ProcessRole::Pollers) {
            Some(roles::start_inventory(
                &settings,
                &common.archive,
                &mut supervisor,
            )?)
        } else {
            None
        };
        let collector = settings.runs(ProcessRole::Collector);
        let handoff = match collector {
            true => Some(start_collector(&settings, &common, &mut supervisor).await?),
            false => None,
        };
        if let (true, Some(inventory)) = (settings.runs(ProcessRole::Pollers), &inventory) {
            roles::start_pollers(
                &settings,
                (&common.pool, &common.archive, &common.metrics),
                (handoff, inventory.clone()),
                &mut supervisor,
            )?;
        }
        if settings.runs(ProcessRole::Analytics) {
            roles::start_analytics(&settings, &common, inventory.as_ref(), &mut supervisor)?;
        }
        let listener = TcpListener::bind(settings.http.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.http.bind))?;
        let port = listener.local_addr()?.port();
        let state = match (settings.runs(ProcessRole::Api), inventory) {
            (true, Some(inventory)) => Some(start_api(
                &settings,
                &common,
                (inventory, collector),
                &mut supervisor,
            )?),
            _ => None,
        };
        let what = match state {
            Some(_) => "devicehub API listening",
            None => "health and metrics listening (no api role)",
        };
        let (pool, metrics) = (common.pool.clone(), common.metrics.clone());
        supervisor.spawn("fleet gauges", Wave::Intake, move |shutdown| {
            crate::routes::prometheus::refresh_fleet(pool.clone(), metrics.clone(), shutdown)
        });
        let probes = common.probes(&settings);
        let server = server::serve(listener, common.pool.clone(), (probes, state), &settings)?;
        let live = common.live.clone();
        supervisor.spawn_once("api", Wave::Intake, |shutdown| {
            server::run_server(server, live, shutdown)
        });
        tracing::info!(address = %listener_address(&settings, port), "{what}");
        Ok(Self {
            port,
            pool: common.pool,
            supervisor,
            grace: Duration::from_secs(settings.shutdown_grace_secs),
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

/// What every role of a process shares, opened once: PostgreSQL, the metrics, the publisher (its
/// connection under the supervisor), InfluxDB, the object store and the live hub.
pub(crate) struct Common {
    pub pool: PgPool,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub publisher: Publisher,
    pub influx: InfluxClient,
    pub archive: ObjectStore,
    pub live: crate::live::Hub,
}

impl Common {
    async fn open(
        settings: &Settings,
        metrics: Arc<Metrics>,
        supervisor: &mut Supervisor,
    ) -> anyhow::Result<Self> {
        let pool = database::prepare(&settings.database).await?;
        let (publisher, connection) =
            Publisher::new(&settings.mqtt, &publisher_client_id(settings))?;
        supervisor.spawn_once("mqtt publisher", Wave::Outputs, |shutdown| {
            connection.run(shutdown)
        });
        let influx = InfluxClient::new(&settings.influxdb)?;
        if let Err(e) = influx.ensure_database().await {
            tracing::warn!(error = %e, "cannot create the InfluxDB database yet");
        }
        let archive = ObjectStore::from_settings(settings)?;
        if let Err(e) = archive.prepare().await {
            tracing::warn!(error = %e, "the archive is not writable yet; the collector will retry");
        }
        let live = crate::live::Hub::new(
            (
                settings.stream.max_clients,
                settings.stream.max_clients_per_user,
            ),
            metrics.stream_clients.clone(),
        );
        Ok(Self {
            pool,
            metrics,
            health: Arc::default(),
            publisher,
            influx,
            archive,
            live,
        })
    }

    /// What the health and metrics endpoints read.
    fn probes(&self, settings: &Settings) -> Probes {
        use secrecy::ExposeSecret;
        use sha2::Digest;
        Probes {
            metrics_token: settings
                .metrics
                .token()
                .map(|t| sha2::Sha256::digest(t.expose_secret().as_bytes()).into()),
            influx: self.influx.clone(),
            archive: self.archive.clone(),
            publisher: self.publisher.clone(),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
        }
    }
}

/// The collector's part: its sinks, ingest and the MQTT source. Returns the hand-off into
/// ingest, for the pollers that are sources too.
async fn start_collector(
    settings: &Settings,
    common: &Common,
    supervisor: &mut Supervisor,
) -> anyhow::Result<tokio::sync::mpsc::Sender<crate::pipeline::Incoming>> {
    let stores = collector::CollectorStores {
        pool: common.pool.clone(),
        influx: common.influx.clone(),
        objects: common.archive.clone(),
        publisher: common.publisher.clone(),
        live: common.live.clone(),
        health: common.health.clone(),
    };
    let handoff = collector::start(settings, &stores, supervisor, &common.metrics).await?;
    tracing::info!("collector started");
    Ok(handoff)
}

/// The API's part: the command outbox and its resends, the live updates (and, without the
/// collector here, the relay that brings readings from the broker), and what handlers share.
fn start_api(
    settings: &Settings,
    common: &Common,
    (inventory, collector): (crate::inventory::Inventory, bool),
    supervisor: &mut Supervisor,
) -> anyhow::Result<ApiState> {
    let networks = Arc::new(crate::clients::DeviceNetworks::from_settings(settings)?);
    let outbox = Outbox::new(
        common.pool.clone(),
        common.publisher.clone(),
        settings.mqtt.iot_prefix.clone(),
        crate::clients::shelly::ShellyClient::new(&settings.shelly, networks.clone())?,
    );
    let listener = (common.pool.clone(), common.live.clone());
    supervisor.spawn("live updates", Wave::Intake, move |shutdown| {
        crate::live::listen::run(listener.0.clone(), listener.1.clone(), shutdown)
    });
    if !collector {
        // Readings come from ingest where the collector runs; here, from the broker.
        let relay = Arc::new(crate::live::relay::Relay::new(
            &settings.mqtt,
            &format!("{}-live-{}", settings.mqtt.client_id, host_name()),
            common.live.clone(),
        )?);
        supervisor.spawn("live readings relay", Wave::Intake, move |shutdown| {
            relay.clone().run(shutdown)
        });
    }
    let resend = outbox.clone();
    supervisor.spawn("command resend", Wave::Intake, move |shutdown| {
        resend.clone().resend_until(shutdown)
    });
    Ok(ApiState {
        influx: common.influx.clone(),
        archive: common.archive.clone(),
        publisher: common.publisher.clone(),
        outbox,
        metrics: common.metrics.clone(),
        inventory,
        cameras: crate::clients::hikvision::CameraClient::new(&settings.hikvision, networks)?,
        collector,
        live: common.live.clone(),
        stream: settings.stream.clone(),
        settings: Arc::new(settings.clone()),
    })
}

fn listener_address(settings: &Settings, port: u16) -> String {
    format!("{}:{port}", settings.http.bind.ip())
}

/// The publisher's client id. Its session is persistent (commands, ACKs and dead letters queued
/// while the broker restarts are sent once it is back), so the id is stable across restarts of
/// this process: `{mqtt.client_id}-pub` beside the collector (whose `client_id` is already one
/// per replica), `{mqtt.client_id}-pub-{host name}` in a process without it (API replicas).
fn publisher_client_id(settings: &Settings) -> String {
    if settings.runs(ProcessRole::Collector) {
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
