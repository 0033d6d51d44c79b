//! The collector, wired: the MQTT source hands messages to ingest (decode, policy, dedupe), which
//! journals them and only then acknowledges the broker; the journal's feed hands what was
//! journaled to each sink, which writes it at its own pace from its own cursor. Every part runs
//! under the supervisor. This is the one place the flow is put together; the sinks it starts are
//! listed in `sinks/mod.rs`.

use std::sync::Arc;

use sqlx::PgPool;

use crate::configuration::Settings;
use crate::domain::Severity;
use crate::health::Health;
use crate::journal::{Feed, Journal};
use crate::metrics::Metrics;
use crate::pipeline::dead_letter::DeadLetters;
use crate::pipeline::dedupe::Dedupers;
use crate::pipeline::enrich::DeviceTypes;
use crate::pipeline::policy::Acceptance;
use crate::pipeline::{AckQueue, Ingest};
use crate::registry::alerts;
use crate::sinks::driver::Oversight;
use crate::sinks::quarantine::PgQuarantine;
use crate::sinks::{self, registry, SinkContext};
use crate::sources::mqtt::MqttSource;
use crate::stores::broker::Publisher;
use crate::stores::influxdb::InfluxClient;
use crate::stores::objects::ObjectStore;
use crate::supervisor::{Supervisor, Wave};
use crate::wire::Decoder;

/// At most this many records kept decoded for the sinks (about 850 bytes each with their
/// payload), and at most about this many bytes (large payloads). The cache holds what the
/// slowest sink has yet to read: usually a few thousand records; more while an archive window is
/// being written or InfluxDB answers slowly. Beyond it a sink reads the journal's files.
const DECODED_CACHE_RECORDS: usize = 30_000;
const DECODED_CACHE_BYTES: usize = 64 << 20;

/// What the collector writes to and publishes through.
pub struct CollectorStores {
    pub pool: PgPool,
    pub influx: InfluxClient,
    pub objects: ObjectStore,
    pub publisher: Publisher,
    /// Where accepted readings are handed to live stream clients.
    pub live: crate::live::Hub,
    /// Where a sink refused for a reason of configuration is named for `/readyz`.
    pub health: Arc<Health>,
}

/// Starts the collector's tasks under `supervisor`: sinks first (each registered at its cursor,
/// so the journal keeps what it needs), then ingest and the source.
/// Returns the hand-off into ingest, for the pollers that are sources too.
pub async fn start(
    settings: &Settings,
    stores: &CollectorStores,
    supervisor: &mut Supervisor,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<tokio::sync::mpsc::Sender<crate::pipeline::Incoming>> {
    let (journal, end) = Journal::open(
        &settings.collector.journal_dir,
        settings.collector.segment_bytes,
    )?;
    let decoder = Arc::new(Decoder::from_settings(&settings.mqtt));
    let feed = Feed::new(
        (journal.dir().to_owned(), journal.damage().clone()),
        end,
        decoder.clone(),
        (DECODED_CACHE_RECORDS, DECODED_CACHE_BYTES),
    );
    let device_types = Arc::new(DeviceTypes::new(stores.pool.clone()));
    let dead_letters = DeadLetters::new(
        stores.publisher.clone(),
        &settings.mqtt,
        metrics.ingest.clone(),
    );
    let quarantine = PgQuarantine::new(stores.pool.clone(), journal.id(), &feed, &metrics.sinks);
    let oversight = Oversight {
        quarantine: Arc::new(quarantine),
        metrics: metrics.sinks.clone(),
        health: stores.health.clone(),
    };
    let context = SinkContext {
        settings,
        pool: &stores.pool,
        influx: &stores.influx,
        objects: &stores.objects,
        publisher: &stores.publisher,
        journal: &journal,
        feed: &feed,
        decoder: &decoder,
        device_types: &device_types,
        dead_letters: &dead_letters,
        metrics: &metrics.sinks,
    };
    let skipped = sinks::spawn_all(supervisor, (&feed, &oversight), &context).await?;
    alert_skipped(&stores.pool, skipped).await;
    spawn_damage_alerts(&journal, stores, metrics, supervisor);

    spawn_upkeep(settings, stores, device_types, supervisor);
    let dedupers = Dedupers::warm(&stores.pool, &decoder, &journal, feed.written_by_all()).await?;
    let acceptance = Acceptance::load(&settings.mqtt, stores.pool.clone()).await?;
    let acks = Arc::new(AckQueue::default());
    let (handoff, incoming) = tokio::sync::mpsc::channel(crate::sources::mqtt::HANDOFF);
    let source = MqttSource::new(
        &settings.mqtt,
        decoder.subscriptions(),
        (acks.clone(), metrics.mqtt.clone()),
        handoff.clone(),
    )?;
    metrics
        .ingest
        .journal_limit(settings.collector.max_journal_bytes);
    let ingest = Ingest {
        pool: stores.pool.clone(),
        fsync: settings.collector.fsync,
        decoder,
        acceptance,
        dedupers,
        journal,
        feed,
        dead_letters,
        metrics: metrics.ingest.clone(),
        max_journal_bytes: settings.collector.max_journal_bytes,
        live: stores.live.clone(),
    };
    // Ingest ends when the source closes the hand-off at shutdown, after journaling and
    // acknowledging what it was handed.
    supervisor.spawn_once("ingest", Wave::Intake, |_| ingest.run(incoming, acks));
    supervisor.spawn_once("mqtt source", Wave::Intake, |shutdown| source.run(shutdown));
    Ok(handoff)
}

/// Devices gone silent are marked offline; the device types the sinks tag readings with are
/// refreshed.
fn spawn_upkeep(
    settings: &Settings,
    stores: &CollectorStores,
    device_types: Arc<DeviceTypes>,
    supervisor: &mut Supervisor,
) {
    let liveness = registry::Liveness::new(stores.pool.clone(), &settings.collector);
    supervisor.spawn("liveness", Wave::Intake, move |shutdown| {
        liveness.clone().run(shutdown)
    });
    supervisor.spawn("device types", Wave::Intake, move |shutdown| {
        device_types.clone().refresh_until(shutdown)
    });
}

/// Damage found in the journal's files (at open, or by a sink's reader) is counted and raised as
/// a critical `journal_corrupt` alert naming the segment and offset; the readers have already
/// passed over it, so the records after it flow.
fn spawn_damage_alerts(
    journal: &Journal,
    stores: &CollectorStores,
    metrics: &Arc<Metrics>,
    supervisor: &mut Supervisor,
) {
    let Some(mut found) = journal.damage().take_receiver() else {
        return;
    };
    let (pool, metrics) = (stores.pool.clone(), metrics.ingest.clone());
    supervisor.spawn_once("journal damage", Wave::Intake, move |shutdown| async move {
        loop {
            let damage = tokio::select! {
                damage = found.recv() => damage,
                () = shutdown.cancelled() => None,
            };
            let Some(damage) = damage else {
                return Ok(());
            };
            metrics.journal_damaged(damage.records());
            let message = damage.to_string();
            if let Err(e) =
                alerts::raise_service(&pool, "journal_corrupt", Severity::Critical, &message).await
            {
                tracing::error!(error = %e, %message, "cannot raise an alert");
            }
        }
    });
}

/// A sink whose cursor lay outside the journal starts after what it missed: a critical service
/// alert says what was not written.
async fn alert_skipped(pool: &PgPool, skipped: Vec<sinks::driver::Skipped>) {
    for s in skipped {
        let message = format!(
            "the {} sink's cursor ({}) was outside the journal: it starts after record {}, and \
             does not write what lay between",
            s.sink, s.stored, s.start
        );
        if let Err(e) =
            alerts::raise_service(pool, "journal_skipped", Severity::Critical, &message).await
        {
            tracing::error!(error = %e, %message, "cannot raise an alert");
        }
    }
}
