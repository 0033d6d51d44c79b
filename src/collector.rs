//! The collector, wired: the MQTT source hands messages to ingest (decode, policy, dedupe), which
//! journals them and only then acknowledges the broker; the journal's feed hands what was
//! journaled to each sink, which writes it at its own pace from its own cursor. Every part runs
//! under the supervisor. This is the one place the flow is put together: a new sink is its module
//! and one line here.

use std::sync::Arc;

use sqlx::PgPool;

use crate::configuration::Settings;
use crate::domain::Severity;
use crate::journal::{Feed, FileCursor, Journal};
use crate::metrics::Metrics;
use crate::pipeline::dead_letter::DeadLetters;
use crate::pipeline::decode::Decoder;
use crate::pipeline::dedupe::Dedupers;
use crate::pipeline::enrich::DeviceTypes;
use crate::pipeline::policy::Acceptance;
use crate::pipeline::{AckQueue, Ingest};
use crate::registry::alerts;
use crate::sinks::driver::{self, Oversight};
use crate::sinks::quarantine::PgQuarantine;
use crate::sinks::{archive, influxdb, registry};
use crate::sources::mqtt::MqttSource;
use crate::stores::broker::Publisher;
use crate::stores::influxdb::InfluxClient;
use crate::stores::objects::ObjectStore;
use crate::supervisor::{Supervisor, Wave};

/// At most this many records kept decoded for the sinks (about 850 bytes each with their
/// payload), and at most about this many bytes (large payloads). The cache holds what the
/// slowest sink has yet to read: usually a few thousand records; more while an archive window is
/// being written or InfluxDB answers slowly. Beyond it a sink reads the journal's files.
const DECODED_CACHE_RECORDS: usize = 30_000;
const DECODED_CACHE_BYTES: usize = 64 << 20;

/// What the collector writes to and publishes through.
pub struct Stores {
    pub pool: PgPool,
    pub influx: InfluxClient,
    pub objects: ObjectStore,
    pub publisher: Publisher,
    /// Where accepted readings are handed to live stream clients.
    pub live: crate::live::Hub,
}

/// Starts the collector's tasks under `supervisor`: sinks first (each registered at its cursor,
/// so the journal keeps what it needs), then ingest and the source.
/// Returns the hand-off into ingest, for the pollers that are sources too.
pub async fn start(
    settings: &Settings,
    stores: &Stores,
    supervisor: &mut Supervisor,
    metrics: &Arc<Metrics>,
) -> anyhow::Result<tokio::sync::mpsc::Sender<crate::pipeline::Incoming>> {
    let (journal, end) = Journal::open(
        &settings.collector.journal_dir,
        settings.collector.segment_bytes,
    )?;
    let decoder = Arc::new(Decoder::from_settings(&settings.mqtt));
    let feed = Feed::new(
        journal.dir().to_owned(),
        end,
        decoder.clone(),
        (DECODED_CACHE_RECORDS, DECODED_CACHE_BYTES),
    );
    let device_types = Arc::new(DeviceTypes::new(stores.pool.clone()));
    let dead_letters = DeadLetters::new(stores.publisher.clone(), &settings.mqtt, metrics.clone());
    let cursor = |name| FileCursor::new(&journal, name);
    let quarantine = PgQuarantine::new(
        stores.pool.clone(),
        journal.id().to_owned(),
        feed.clone(),
        metrics.clone(),
    );
    let oversight = Oversight {
        quarantine: Arc::new(quarantine),
        metrics: metrics.clone(),
    };
    let sinks = (&feed, &oversight);

    let sink = influxdb::InfluxSink::new(
        stores.influx.clone(),
        device_types.clone(),
        cursor("influxdb"),
        metrics.clone(),
    );
    let mut skipped = Vec::new();
    skipped.extend(driver::spawn(supervisor, sinks, settings.influxdb.batch, sink).await?);
    let sink = archive::ArchiveSink::new(
        stores.objects.clone(),
        device_types.clone(),
        decoder.clone(),
        cursor("archive"),
        metrics.clone(),
    );
    skipped.extend(driver::spawn(supervisor, sinks, settings.archive.batch, sink).await?);
    let registry_cursor = format!("{}/{}/registry", settings.mqtt.client_id, journal.id());
    let sink = registry::RegistrySink::new(
        stores.pool.clone(),
        registry_cursor,
        settings,
        (stores.publisher.clone(), dead_letters.clone()),
        feed.clone(),
    );
    skipped.extend(driver::spawn(supervisor, sinks, settings.registry.batch, sink).await?);
    for s in skipped {
        let message = format!(
            "the {} sink's cursor ({}) was outside the journal: it starts after record {}, and \
             does not write what lay between",
            s.sink, s.stored, s.start
        );
        if let Err(e) = alerts::raise_service(
            &stores.pool,
            "journal_skipped",
            Severity::Critical,
            &message,
        )
        .await
        {
            tracing::error!(error = %e, %message, "cannot raise an alert");
        }
    }

    let liveness = registry::Liveness::new(stores.pool.clone(), &settings.collector);
    supervisor.spawn("liveness", Wave::Intake, move |shutdown| {
        liveness.clone().run(shutdown)
    });
    supervisor.spawn("device types", Wave::Intake, move |shutdown| {
        device_types.clone().refresh_until(shutdown)
    });

    let dedupers = Dedupers::warm(&stores.pool, &decoder, &journal, feed.written_by_all()).await?;
    let acceptance = Acceptance::load(&settings.mqtt, stores.pool.clone()).await?;
    let acks = Arc::new(AckQueue::default());
    let (handoff, incoming) = tokio::sync::mpsc::channel(crate::sources::mqtt::HANDOFF);
    let source = MqttSource::new(
        &settings.mqtt,
        decoder.subscriptions(),
        (acks.clone(), metrics.clone()),
        handoff.clone(),
    )?;
    metrics.journal_limit(settings.collector.max_journal_bytes);
    let ingest = Ingest {
        pool: stores.pool.clone(),
        fsync: settings.collector.fsync,
        decoder,
        acceptance,
        dedupers,
        journal,
        feed,
        dead_letters,
        metrics: metrics.clone(),
        max_journal_bytes: settings.collector.max_journal_bytes,
        live: stores.live.clone(),
    };
    // Ingest ends when the source closes the hand-off at shutdown, after journaling and
    // acknowledging what it was handed.
    supervisor.spawn_once("ingest", Wave::Intake, |_| ingest.run(incoming, acks));
    supervisor.spawn_once("mqtt source", Wave::Intake, |shutdown| source.run(shutdown));
    Ok(handoff)
}
