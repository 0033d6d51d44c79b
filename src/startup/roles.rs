//! One start function per role beside the API's: the inventory (for the `api` and `pollers`
//! roles), the pollers and the analytics. `Application::build` composes them.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::configuration::Settings;
use crate::metrics::Metrics;
use crate::stores::objects::ObjectStore;
use crate::supervisor::{Supervisor, Wave};

/// The device metadata (a malformed file stops start-up here, naming its line; changes are
/// reloaded) and the DuckDB inventory over the lake's router snapshots.
pub(super) fn start_inventory(
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
pub(super) fn start_pollers(
    settings: &Settings,
    (pool, archive, metrics): (&PgPool, &ObjectStore, &Arc<Metrics>),
    (handoff, inventory): (
        Option<tokio::sync::mpsc::Sender<crate::pipeline::Incoming>>,
        crate::inventory::Inventory,
    ),
    supervisor: &mut Supervisor,
) -> anyhow::Result<()> {
    let mikrotik = settings.mikrotik.url();
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
        // Readings go through ingest, which the collector runs (`Settings::check` refused
        // configured Shelly and HikVision hosts here).
        if mikrotik.is_some() {
            tracing::warn!(
                "the Shelly devices the inventory finds are not polled: the Shelly poller runs \
                 in a process with both the pollers and the collector roles"
            );
        }
        return Ok(());
    };
    let networks = Arc::new(crate::clients::DeviceNetworks::from_settings(settings)?);
    start_cameras(settings, (pool, &handoff, metrics), &networks, supervisor)?;
    if settings.shelly.hosts.is_empty() && mikrotik.is_none() {
        return Ok(());
    }
    let context = crate::sources::shelly::ShellyContext::new(
        (&settings.shelly, networks),
        pool.clone(),
        handoff,
        metrics.polls.clone(),
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

/// The analytics' part: the scheduled models, with the device metadata from the inventory or,
/// without one here, loaded (and watched) for them alone.
pub(super) fn start_analytics(
    settings: &Settings,
    common: &super::Common,
    inventory: Option<&crate::inventory::Inventory>,
    supervisor: &mut Supervisor,
) -> anyhow::Result<()> {
    let metadata = match inventory {
        Some(inventory) => inventory.metadata().clone(),
        None => {
            let metadata = crate::inventory::MetadataFile::load(&settings.inventory.metadata_csv)?;
            let watched = metadata.clone();
            supervisor.spawn("device metadata", Wave::Intake, move |shutdown| {
                watched.clone().watch(Duration::from_secs(5), shutdown)
            });
            metadata
        }
    };
    let analytics = crate::analytics::Analytics::new(
        settings,
        common.pool.clone(),
        common.archive.clone(),
        metadata,
    );
    let metrics = common.metrics.analytics.clone();
    supervisor.spawn("analytics", Wave::Intake, move |shutdown| {
        analytics.clone().run_on_schedule(metrics.clone(), shutdown)
    });
    tracing::info!(
        silver_every_s = settings.analytics.silver_every_s,
        gold_every_s = settings.analytics.gold_every_s,
        "analytics started"
    );
    Ok(())
}

/// One task per configured HikVision camera, its detections handed to ingest.
fn start_cameras(
    settings: &Settings,
    (pool, handoff, metrics): (
        &PgPool,
        &tokio::sync::mpsc::Sender<crate::pipeline::Incoming>,
        &Arc<Metrics>,
    ),
    networks: &Arc<crate::clients::DeviceNetworks>,
    supervisor: &mut Supervisor,
) -> anyhow::Result<()> {
    for host in &settings.hikvision.hosts {
        let camera = crate::sources::hikvision::Camera::new(
            (&settings.hikvision, networks.clone()),
            host,
            &settings.mqtt.qs_prefix,
            (pool.clone(), handoff.clone(), metrics.polls.clone()),
        )?;
        supervisor.spawn(format!("camera {host}"), Wave::Intake, move |shutdown| {
            camera.clone().run(shutdown)
        });
        tracing::info!(host, "HikVision camera started");
    }
    Ok(())
}
