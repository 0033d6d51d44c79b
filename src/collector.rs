//! The collector: subscribes to the broker, decodes, drops repeats of `(device_id, seq)`,
//! appends what it accepts to the journal, and only then acknowledges the broker (QoS 1). Three
//! sinks read the journal: InfluxDB, the archive, and the PostgreSQL registry.
//!
//! Backpressure: when the journal holds `collector.max_journal_bytes` that some sink has not yet
//! written, the collector stops acknowledging, so the broker keeps the rest.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rumqttc::{AsyncClient, Event, Packet, Publish, QoS, SubscribeFilter};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::configuration::{Settings, UnknownDevicePolicy};
use crate::domain::DeviceId;
use crate::ingest::mqtt::{self, Publisher};
use crate::journal::{Entry, FileCursor, Journal, JournalEnd, JournalReader, Record};
use crate::pipeline::decode::{Decoder, Message, Reading, RejectKind, Rejection};
use crate::sinks::archive::{ObjectStore, RawWindow};
use crate::sinks::influxdb::{push_line, InfluxClient};
use crate::sinks::lake::{LakeRow, LakeWindow};
use crate::sinks::registry::{self, RegistryBatch, SequenceState};
use crate::sinks::Backoff;

/// Ingest counters, shown by `GET /api/stats` and `GET /metrics`.
#[derive(Default)]
pub struct Counters {
    pub received: AtomicU64,
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub dead_lettered: AtomicU64,
    rejected_by_kind: [AtomicU64; RejectKind::ALL.len()],
    pub points_written: AtomicU64,
    pub influx_errors: AtomicU64,
    pub archive_objects: AtomicU64,
    pub archive_errors: AtomicU64,
    pub registry_batches: AtomicU64,
    pub journal_bytes: AtomicU64,
}

/// `GET /api/stats` → `ingest`.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestStats {
    pub messages_received: u64,
    pub messages_accepted: u64,
    pub duplicates_dropped: u64,
    pub dead_lettered: u64,
    /// Dead letters by reason (`not_json`, `wrong_type`, ...).
    pub rejected: std::collections::BTreeMap<String, u64>,
    pub points_written: u64,
    pub influx_write_errors: u64,
    pub archive_objects_written: u64,
    pub archive_write_errors: u64,
    pub journal_bytes: u64,
}

impl Counters {
    fn reject(&self, kind: RejectKind) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = RejectKind::ALL.iter().position(|k| *k == kind) {
            self.rejected_by_kind[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> IngestStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IngestStats {
            messages_received: get(&self.received),
            messages_accepted: get(&self.accepted),
            duplicates_dropped: get(&self.duplicates),
            dead_lettered: get(&self.dead_lettered),
            rejected: RejectKind::ALL
                .iter()
                .zip(&self.rejected_by_kind)
                .filter(|(_, c)| get(c) > 0)
                .map(|(k, c)| (k.as_str().to_owned(), get(c)))
                .collect(),
            points_written: get(&self.points_written),
            influx_write_errors: get(&self.influx_errors),
            archive_objects_written: get(&self.archive_objects),
            archive_write_errors: get(&self.archive_errors),
            journal_bytes: get(&self.journal_bytes),
        }
    }
}

/// Drops repeats of `(device_id, seq)`: the last number per device and a 64-wide window of
/// numbers below it (devices publishing to several brokers deliver each message more than once,
/// not always in order). A 0, or a number far below the window, is a device restart.
#[derive(Default)]
struct Dedupe {
    windows: HashMap<DeviceId, (u64, u64), foldhash::fast::RandomState>,
}

impl Dedupe {
    fn accept(&mut self, device: &DeviceId, seq: u64) -> bool {
        let Some((last, seen)) = self.windows.get_mut(device) else {
            self.windows.insert(device.clone(), (seq, 1));
            return true;
        };
        if seq > *last {
            let shift = seq - *last;
            *seen = if shift >= 64 { 0 } else { *seen << shift } | 1;
            *last = seq;
            return true;
        }
        let back = *last - seq;
        if seq == 0 && *last != 0 || back >= 64 {
            *last = seq;
            *seen = 1;
            return true;
        }
        let bit = 1u64 << back;
        if *seen & bit != 0 {
            return false;
        }
        *seen |= bit;
        true
    }
}

/// Fingerprints of the most recently journaled messages. After a crash between writing the
/// journal and acknowledging, the broker redelivers those messages with the DUP flag; a DUP
/// message whose exact topic and payload were journaled recently is one of them.
struct Redeliveries {
    order: std::collections::VecDeque<u64>,
    seen: HashSet<u64, foldhash::fast::RandomState>,
}

impl Redeliveries {
    /// More than any batch of unacknowledged messages can hold.
    const CAPACITY: usize = 65_536;

    fn new() -> Self {
        Self {
            order: Default::default(),
            seen: Default::default(),
        }
    }

    fn fingerprint(topic: &str, payload: &[u8]) -> u64 {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = foldhash::quality::FixedState::with_seed(0x6465_7669_6365_6875).build_hasher();
        topic.hash(&mut h);
        payload.hash(&mut h);
        h.finish()
    }

    fn remember(&mut self, fingerprint: u64) {
        if self.seen.insert(fingerprint) {
            self.order.push_back(fingerprint);
            if self.order.len() > Self::CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.seen.remove(&old);
                }
            }
        }
    }

    fn contains(&self, fingerprint: u64) -> bool {
        self.seen.contains(&fingerprint)
    }
}

pub struct CollectorContext {
    pub settings: Settings,
    pub pool: PgPool,
    pub publisher: Publisher,
    pub counters: Arc<Counters>,
    pub decoder: Decoder,
    pub device_types: DeviceTypes,
    pub decoded: DecodedCache,
}

/// A journaled record with its message as decoded.
pub struct Journaled {
    pub record: Record,
    pub message: Message,
}

impl Journaled {
    /// Decodes a record read back from the journal. Every journaled record passed decoding at
    /// ingest; should it not now (the decoder's settings changed across a restart), it still
    /// goes to the raw archive, with no readings.
    fn decode(decoder: &Decoder, record: Record) -> Self {
        let message = decoder
            .decode(&record.topic, &record.payload, record.received)
            .unwrap_or_else(|rejection| {
                tracing::warn!(no = record.no, reason = %rejection.kind, detail = %rejection.detail,
                    "a journaled message no longer decodes; archived raw only");
                Message::Ignored
            });
        Self { record, message }
    }
}

/// The most recently journaled records, decoded, by journal number: the sinks, which usually
/// read near the head of the journal, take them from here instead of reading the journal's files
/// and parsing the same JSON again. Entries every sink has read are dropped (a sink that needs
/// one again, replaying after a failed write, reads the journal), and beyond a count the oldest.
/// A sink that misses (it fell behind, or the process restarted) reads the journal and decodes
/// the record itself, with the same result: ingest decodes with the journal's microsecond
/// receive time.
pub struct DecodedCache {
    inner: std::sync::Mutex<DecodedWindow>,
    capacity: usize,
}

#[derive(Default)]
struct DecodedWindow {
    first: u64,
    entries: std::collections::VecDeque<Arc<Journaled>>,
}

impl DecodedCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Default::default(),
            capacity,
        }
    }

    /// Adds records journaled as `first..`, forgetting what every sink has read (through
    /// `done`) and the oldest beyond capacity.
    fn extend(&self, first: u64, entries: impl IntoIterator<Item = Arc<Journaled>>, done: u64) {
        let Ok(mut window) = self.inner.lock() else {
            return;
        };
        if window.first + window.entries.len() as u64 != first {
            window.entries.clear();
            window.first = first;
        }
        window.entries.extend(entries);
        let excess = window.entries.len().saturating_sub(self.capacity) as u64;
        let consumed = (done + 1).saturating_sub(window.first);
        let drop = excess.max(consumed).min(window.entries.len() as u64);
        window.entries.drain(..drop as usize);
        window.first += drop;
    }

    /// Up to `max` consecutive records from number `from` on, none past `end`; empty when the
    /// cache does not hold `from`.
    fn take(&self, from: u64, end: u64, max: usize) -> Vec<Arc<Journaled>> {
        let Ok(window) = self.inner.lock() else {
            return Vec::new();
        };
        let Some(skip) = from.checked_sub(window.first) else {
            return Vec::new();
        };
        let (skip, len) = (skip as usize, window.entries.len());
        let count = (end + 1).saturating_sub(from).min(max as u64) as usize;
        let stop = skip.saturating_add(count).min(len);
        if skip >= stop {
            return Vec::new();
        }
        window.entries.range(skip..stop).cloned().collect()
    }
}

/// Reads up to `max` records after the reader's position, none past `end`: from the decoded
/// cache when it holds the next one, else from the journal's files.
async fn read_journaled(
    ctx: &CollectorContext,
    mut reader: JournalReader,
    end: u64,
    max: usize,
    read: &AtomicU64,
) -> (JournalReader, std::io::Result<Vec<Arc<Journaled>>>) {
    if reader.next_no() > end {
        return (reader, Ok(Vec::new()));
    }
    let cached = ctx.decoded.take(reader.next_no(), end, max);
    if let Some(last) = cached.last() {
        reader.skip_to(last.record.no);
        read.store(last.record.no, Ordering::Release);
        return (reader, Ok(cached));
    }
    let (reader, records) = reader.read_blocking(end, max).await;
    read.store(reader.next_no() - 1, Ordering::Release);
    let journaled = records.map(|records| {
        records
            .into_iter()
            .map(|r| Arc::new(Journaled::decode(&ctx.decoder, r)))
            .collect()
    });
    (reader, journaled)
}

/// The registry's `device_type` of each device (`None`: registered without one), for the
/// InfluxDB tag and the lake column. Refreshed every 30 s, and at once (at most once a second)
/// when a sink meets a device it does not know yet.
#[derive(Default)]
pub struct DeviceTypes {
    map: std::sync::RwLock<Arc<DeviceTypeMap>>,
    last_refresh: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

type DeviceTypeMap = HashMap<String, Option<String>, foldhash::fast::RandomState>;

impl DeviceTypes {
    fn snapshot(&self) -> Arc<DeviceTypeMap> {
        self.map.read().map(|m| m.clone()).unwrap_or_default()
    }

    /// The types of `devices` as far as the registry knows them.
    async fn lookup<'a>(
        &self,
        pool: &PgPool,
        mut devices: impl Iterator<Item = &'a str>,
    ) -> Arc<DeviceTypeMap> {
        let snapshot = self.snapshot();
        if devices.all(|d| snapshot.contains_key(d)) {
            return snapshot;
        }
        let mut last = self.last_refresh.lock().await;
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(tokio::time::Instant::now());
            self.refresh(pool).await;
        }
        self.snapshot()
    }

    async fn refresh(&self, pool: &PgPool) {
        let query = sqlx::query_as::<_, (String, Option<String>)>(
            "SELECT device_id, NULLIF(device_type, '') FROM devices",
        )
        .fetch_all(pool);
        match tokio::time::timeout(Duration::from_secs(1), query).await {
            Ok(Ok(rows)) => {
                if let Ok(mut map) = self.map.write() {
                    *map = Arc::new(rows.into_iter().collect());
                }
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "cannot read device types"),
            Err(_) => tracing::debug!("reading device types timed out"),
        }
    }
}

async fn refresh_device_types(ctx: Arc<CollectorContext>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tick.tick().await;
        ctx.device_types.refresh(&ctx.pool).await;
    }
}

fn decoder(settings: &Settings) -> Decoder {
    Decoder {
        iot_prefix: settings.mqtt.iot_prefix.clone(),
        qs_prefix: settings.mqtt.qs_prefix.clone(),
        max_payload_bytes: settings.mqtt.max_payload_bytes,
        local_zone: settings
            .mqtt
            .local_timezone
            .parse()
            .unwrap_or(chrono_tz::Tz::UTC),
        ..Decoder::default()
    }
}

/// At most this many records kept decoded for the sinks (about 850 bytes each with their
/// payload). The cache holds what the slowest sink has yet to read: usually a few thousand
/// records; more while an archive window is being written or InfluxDB answers slowly.
const DECODED_CACHE_MESSAGES: usize = 30_000;

/// Starts the collector's tasks. They run until the process ends and never exit on bad input
/// or a dead store.
pub async fn start(
    settings: &Settings,
    pool: PgPool,
    publisher: Publisher,
    store: ObjectStore,
    counters: Arc<Counters>,
) -> anyhow::Result<()> {
    let (journal, end) = Journal::open(&settings.collector.journal_dir, 64 * 1024 * 1024)?;
    let ctx = Arc::new(CollectorContext {
        settings: settings.clone(),
        pool,
        publisher,
        counters,
        decoder: decoder(settings),
        device_types: DeviceTypes::default(),
        decoded: DecodedCache::new(DECODED_CACHE_MESSAGES),
    });
    tokio::spawn(refresh_device_types(ctx.clone()));
    let cursor_prefix = format!("{}/{}", settings.mqtt.client_id, journal.id());
    let positions = Arc::new(SinkPositions::default());

    let influx = InfluxClient::new(&settings.influxdb)?;
    let influx_cursor = FileCursor::new(&journal, "influxdb");
    let archive_cursor = FileCursor::new(&journal, "archive");
    positions
        .written
        .influx
        .store(influx_cursor.load()?, Ordering::Relaxed);
    positions
        .written
        .archive
        .store(archive_cursor.load()?, Ordering::Relaxed);
    let registry_name = format!("{cursor_prefix}/registry");
    positions.written.registry.store(
        registry::load_cursor(&ctx.pool, &registry_name).await?,
        Ordering::Relaxed,
    );
    let (written, read) = (&positions.written, &positions.read);
    for (w, r) in [
        (&written.influx, &read.influx),
        (&written.archive, &read.archive),
        (&written.registry, &read.registry),
    ] {
        r.store(w.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    let dir = settings.collector.journal_dir.clone();
    tokio::spawn(influx_sink(
        ctx.clone(),
        influx,
        JournalReader::new(&dir, positions.written.influx.load(Ordering::Relaxed)),
        end.clone(),
        influx_cursor,
        positions.clone(),
    ));
    tokio::spawn(archive_sink(
        ctx.clone(),
        store,
        JournalReader::new(&dir, positions.written.archive.load(Ordering::Relaxed)),
        end.clone(),
        archive_cursor,
        positions.clone(),
    ));
    tokio::spawn(registry_sink(
        ctx.clone(),
        JournalReader::new(&dir, positions.written.registry.load(Ordering::Relaxed)),
        end.clone(),
        registry_name,
        positions.clone(),
    ));
    tokio::spawn(liveness(ctx.clone()));

    let dedupe = warm_dedupe(&ctx, &dir, positions.written.min()).await?;
    let mut redeliveries = Redeliveries::new();
    let tail_start = journal.first_no().max(
        journal
            .last_no()
            .saturating_sub(Redeliveries::CAPACITY as u64 - 1),
    );
    let mut tail = JournalReader::new(&dir, tail_start.saturating_sub(1));
    loop {
        let records = tail.read(journal.last_no(), 10_000)?;
        if records.is_empty() {
            break;
        }
        for r in records {
            redeliveries.remember(Redeliveries::fingerprint(&r.topic, &r.payload));
        }
    }
    let known = known_devices(&ctx.pool).await?;
    // Unbounded so that the event loop is always polled (acks flow out while publishes flow in);
    // what can pile up here is bounded by the broker's in-flight window for this client.
    let (tx, rx) = mpsc::unbounded_channel();
    let options = mqtt::options(&settings.mqtt, &settings.mqtt.client_id, true)?;
    let mut options = options;
    options.set_manual_acks(true);
    let (client, eventloop) = AsyncClient::new(options, 64);
    let acks = Arc::new(AckQueue::default());
    tokio::spawn(receive(ctx.clone(), client, eventloop, tx, acks.clone()));
    tokio::spawn(accept(
        ctx,
        acks,
        rx,
        journal,
        Dedupers {
            seq: dedupe,
            redeliveries,
        },
        known,
        positions,
    ));
    Ok(())
}

/// One journal number per sink.
#[derive(Default)]
struct PerSink {
    influx: AtomicU64,
    archive: AtomicU64,
    registry: AtomicU64,
}

impl PerSink {
    fn min(&self) -> u64 {
        [&self.influx, &self.archive, &self.registry]
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }
}

/// How far each sink has written (for journal clean-up and backpressure) and read (the decoded
/// cache may drop what every sink has read).
#[derive(Default)]
struct SinkPositions {
    written: PerSink,
    read: PerSink,
}

/// Dedupe state after a restart: the registry's last numbers, then the journal's unsent tail.
async fn warm_dedupe(
    ctx: &CollectorContext,
    dir: &std::path::Path,
    from: u64,
) -> anyhow::Result<Dedupe> {
    let mut dedupe = Dedupe::default();
    for (device, seq) in SequenceState::load(&ctx.pool).await?.into_pairs() {
        if let Ok(id) = DeviceId::parse(&device) {
            dedupe.accept(&id, seq);
        }
    }
    let mut reader = JournalReader::new(dir, from);
    loop {
        let records = reader.read(u64::MAX, 10_000)?;
        if records.is_empty() {
            break;
        }
        for r in records {
            if let Ok(m) = ctx.decoder.decode(&r.topic, &r.payload, r.received) {
                if let (Some(id), Some(seq)) = (m.device_id(), m.seq()) {
                    dedupe.accept(id, seq);
                }
            }
        }
    }
    Ok(dedupe)
}

async fn known_devices(pool: &PgPool) -> Result<HashSet<String>, sqlx::Error> {
    Ok(sqlx::query_scalar("SELECT device_id FROM devices")
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect())
}

/// Acknowledgements the accept task owes the broker, written by the receive task (which owns
/// the connection) in one flush per batch. rumqttc's own `ack` writes and flushes each PUBACK on
/// its own: a system call per message here and a read per message in the broker.
#[derive(Default)]
struct AckQueue {
    /// `(connection, packet id)`: an ack belongs to the connection its message came on.
    pending: std::sync::Mutex<Vec<(u64, u16)>>,
    ready: tokio::sync::Notify,
}

impl AckQueue {
    fn push(&self, acks: impl IntoIterator<Item = (u64, u16)>) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.extend(acks);
        }
        self.ready.notify_one();
    }

    fn take(&self) -> Vec<(u64, u16)> {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}

/// A publish as received, with the number of the connection it came on.
struct Received {
    connection: u64,
    publish: Publish,
}

/// Polls the broker connection, hands publishes over and writes their acknowledgements;
/// reconnects with backoff.
async fn receive(
    ctx: Arc<CollectorContext>,
    client: AsyncClient,
    mut eventloop: rumqttc::EventLoop,
    tx: mpsc::UnboundedSender<Received>,
    acks: Arc<AckQueue>,
) {
    let group = ctx.settings.mqtt.shared_group.trim().to_owned();
    let filters: Vec<SubscribeFilter> = ctx
        .decoder
        .subscriptions()
        .into_iter()
        .map(|t| {
            SubscribeFilter::new(
                if group.is_empty() {
                    t
                } else {
                    format!("$share/{group}/{t}")
                },
                QoS::AtLeastOnce,
            )
        })
        .collect();
    let mut backoff = Backoff::default();
    let mut connected = false;
    let mut connection = 0u64;
    loop {
        // Waiting acks interrupt a wait for the broker (rumqttc's poll resumes where it was:
        // its reads are buffered and its events queued).
        let event = tokio::select! {
            biased;
            () = acks.ready.notified() => {
                write_acks(&mut eventloop, connection, acks.take()).await;
                continue;
            }
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!("collector connected to the broker");
                connected = true;
                connection += 1;
                backoff.reset();
                if let Err(e) = client.subscribe_many(filters.clone()).await {
                    tracing::error!(error = %e, "cannot subscribe");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                if tx
                    .send(Received {
                        connection,
                        publish,
                    })
                    .is_err()
                {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if connected {
                    tracing::warn!(error = %e, "collector lost the broker; reconnecting");
                    connected = false;
                }
                backoff.wait().await;
            }
        }
    }
}

/// Writes PUBACKs for messages of the current connection and flushes once. Acks of an earlier
/// connection are dropped: the broker sends those messages again (marked DUP), and they are
/// acknowledged then, when the journal recognises them.
async fn write_acks(eventloop: &mut rumqttc::EventLoop, connection: u64, acks: Vec<(u64, u16)>) {
    let Some(network) = eventloop.network.as_mut() else {
        return;
    };
    let mut written = false;
    for (_, pkid) in acks.into_iter().filter(|(c, _)| *c == connection) {
        if let Err(e) = network
            .write(Packet::PubAck(rumqttc::PubAck::new(pkid)))
            .await
        {
            tracing::warn!(error = ?e, "cannot acknowledge messages (the broker will send them again)");
            return;
        }
        written = true;
    }
    if written {
        if let Err(e) = network.flush().await {
            tracing::warn!(error = ?e, "cannot acknowledge messages (the broker will send them again)");
        }
    }
}

struct Dedupers {
    seq: Dedupe,
    redeliveries: Redeliveries,
}

/// Decodes, dedupes, journals and only then acknowledges, in batches of whatever has arrived.
async fn accept(
    ctx: Arc<CollectorContext>,
    acks: Arc<AckQueue>,
    mut rx: mpsc::UnboundedReceiver<Received>,
    mut journal: Journal,
    dedupers: Dedupers,
    mut known: HashSet<String>,
    positions: Arc<SinkPositions>,
) {
    let Dedupers {
        seq: mut dedupe,
        mut redeliveries,
    } = dedupers;
    let counters = &ctx.counters;
    let reject_unknown = ctx.settings.mqtt.unknown_devices == UnknownDevicePolicy::Reject;
    let max_bytes = ctx.settings.collector.max_journal_bytes;
    let mut batch = Vec::with_capacity(4096);
    let mut entries = Vec::with_capacity(4096);
    let mut decoded = Vec::with_capacity(4096);
    let mut last_sync = tokio::time::Instant::now();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        // Microseconds, as the journal keeps it: a record decoded again later (by a sink that
        // missed the decoded cache, or after a restart) gives exactly the same readings.
        let now = Utc::now();
        let now = chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        for Received { publish, .. } in &batch {
            counters.received.fetch_add(1, Ordering::Relaxed);
            let topic = publish.topic.as_str();
            let fingerprint = Redeliveries::fingerprint(topic, &publish.payload);
            if publish.dup && redeliveries.contains(fingerprint) {
                counters.duplicates.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let message = ctx.decoder.decode(topic, &publish.payload, now);
            let message = match message {
                Ok(m) => m,
                Err(rejection) => {
                    dead_letter(&ctx, topic, &publish.payload, &rejection);
                    continue;
                }
            };
            if let Some(device) = message.device_id() {
                if reject_unknown && !known.contains(device.as_str()) {
                    if is_registered(&ctx.pool, device).await {
                        known.insert(device.as_str().to_owned());
                    } else {
                        let rejection = Rejection {
                            kind: RejectKind::InvalidDeviceId,
                            detail: format!("device {device} is not registered"),
                        };
                        dead_letter(&ctx, topic, &publish.payload, &rejection);
                        continue;
                    }
                }
                if let Some(seq) = message.seq() {
                    if !dedupe.accept(device, seq) {
                        counters.duplicates.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
            }
            if matches!(message, Message::Ignored) {
                continue;
            }
            redeliveries.remember(fingerprint);
            decoded.push(message);
            entries.push(Entry {
                received: now,
                topic: publish.topic.clone(),
                payload: publish.payload.to_vec(),
            });
        }
        // Backpressure: hold the acks while the sinks are too far behind.
        loop {
            if let Err(e) = journal.remove_through(positions.written.min()) {
                tracing::error!(error = %e, "cannot remove consumed journal segments");
            }
            counters
                .journal_bytes
                .store(journal.bytes(), Ordering::Relaxed);
            if journal.bytes() < max_bytes {
                break;
            }
            tracing::warn!(
                bytes = journal.bytes(),
                "journal full: holding broker acks until the sinks catch up"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !entries.is_empty() {
            let mut backoff = Backoff::default();
            loop {
                let cache = |numbers: std::ops::RangeInclusive<u64>, entries: &mut Vec<Entry>| {
                    let first = *numbers.start();
                    let journaled = numbers.zip(entries.drain(..).zip(decoded.drain(..))).map(
                        |(no, (entry, message))| {
                            let record = Record {
                                no,
                                received: entry.received,
                                topic: entry.topic,
                                payload: entry.payload,
                            };
                            Arc::new(Journaled { record, message })
                        },
                    );
                    ctx.decoded.extend(first, journaled, positions.read.min());
                };
                match journal.append_then(&mut entries, cache) {
                    Ok(numbers) => {
                        counters
                            .accepted
                            .fetch_add(numbers.count() as u64, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot write the journal; retrying (broker acks held)");
                        backoff.wait().await;
                    }
                }
            }
        }
        acks.push(
            batch
                .drain(..)
                .filter(|r| r.publish.qos == QoS::AtLeastOnce)
                .map(|r| (r.connection, r.publish.pkid)),
        );
        if last_sync.elapsed() > Duration::from_secs(1) {
            last_sync = tokio::time::Instant::now();
            if let Ok(file) = journal.sync_handle() {
                tokio::task::spawn_blocking(move || file.sync_data());
            }
        }
    }
}

async fn is_registered(pool: &PgPool, device: &DeviceId) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM devices WHERE device_id = $1)")
        .bind(device.as_str())
        .fetch_one(pool)
        .await
        .unwrap_or(false)
}

fn dead_letter(ctx: &CollectorContext, topic: &str, payload: &[u8], rejection: &Rejection) {
    ctx.counters.reject(rejection.kind);
    let qs = topic.starts_with(&format!("{}/", ctx.settings.mqtt.qs_prefix));
    let target = if qs {
        format!("{}/deadletter", ctx.settings.mqtt.qs_prefix)
    } else {
        ctx.settings.mqtt.deadletter_topic.clone()
    };
    let preview: String = String::from_utf8_lossy(&payload[..payload.len().min(1024)]).into_owned();
    let body = serde_json::json!({
        "error": rejection.detail,
        "reason": rejection.kind.as_str(),
        "topic": topic,
        "payload": preview,
        "payload_bytes": payload.len(),
        "received_at": Utc::now().to_rfc3339(),
    });
    log_rejection(rejection);
    if let Err(e) = ctx
        .publisher
        .publish(target, body.to_string().into_bytes(), false)
    {
        tracing::warn!(error = %e, "cannot publish a dead letter");
    }
}

/// Logs a rejection once per kind per minute, so a misbehaving device cannot flood the log.
fn log_rejection(rejection: &Rejection) {
    static LAST: std::sync::Mutex<Vec<(RejectKind, i64)>> = std::sync::Mutex::new(Vec::new());
    let now = Utc::now().timestamp();
    let Ok(mut last) = LAST.lock() else { return };
    match last.iter_mut().find(|(k, _)| *k == rejection.kind) {
        Some((_, at)) if now - *at < 60 => return,
        Some((_, at)) => *at = now,
        None => last.push((rejection.kind, now)),
    }
    tracing::warn!(reason = %rejection.kind, detail = %rejection.detail, "dead-lettered a message (logged once a minute per reason)");
}

/// Collects records for one batch: up to `max`, waiting at most `age` after the first.
async fn next_batch(
    ctx: &CollectorContext,
    mut reader: JournalReader,
    (end, read): (&JournalEnd, &AtomicU64),
    max: usize,
    age: Duration,
) -> (JournalReader, Vec<Arc<Journaled>>) {
    end.wait_past(reader.next_no() - 1).await;
    let deadline = tokio::time::Instant::now() + age;
    let mut batch = Vec::new();
    loop {
        let (r, records) =
            read_journaled(ctx, reader, end.current(), max - batch.len(), read).await;
        reader = r;
        match records {
            Ok(records) => batch.extend(records),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the journal");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        if batch.len() >= max || tokio::time::Instant::now() >= deadline {
            return (reader, batch);
        }
        gather_tick(deadline).await;
    }
}

/// How often a sink that has started a batch looks for more records. Waking on every append
/// (each batch the broker delivers) cost thousands of thread wake-ups a second under load; a
/// tick bounds that at the price of at most this much latency.
const GATHER_TICK: Duration = Duration::from_millis(20);

async fn gather_tick(deadline: tokio::time::Instant) {
    tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + GATHER_TICK)).await;
}

/// Writes line protocol to InfluxDB. One write is in flight while the next batch is read and
/// formatted, so InfluxDB and the collector work at the same time; writes still complete, and
/// move the cursor, strictly in journal order.
async fn influx_sink(
    ctx: Arc<CollectorContext>,
    client: InfluxClient,
    mut reader: JournalReader,
    end: JournalEnd,
    cursor: FileCursor,
    positions: Arc<SinkPositions>,
) {
    let settings = &ctx.settings.influxdb;
    let age = Duration::from_millis(settings.flush_interval_ms);
    let dir = ctx.settings.collector.journal_dir.clone();
    let mut in_flight: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let source = (&end, &positions.read.influx);
        let (r, batch) = next_batch(&ctx, reader, source, settings.batch_size, age).await;
        reader = r;
        let Some(last) = batch.last().map(|j| j.record.no) else {
            continue;
        };
        let types = device_types(&ctx, &batch).await;
        let mut lines = String::with_capacity(batch.len() * 360);
        let mut points = 0u64;
        for journaled in &batch {
            let mut readings = journaled.message.readings().into_iter().peekable();
            // One device per message: its type is looked up once.
            let device_type = readings.peek().and_then(|r| device_type(&types, r));
            for reading in readings {
                push_line(&mut lines, reading, device_type);
                points += 1;
            }
        }
        drop(batch);
        if let Some(previous) = in_flight.take() {
            if let Err(e) = previous.await {
                // The previous batch may not be in InfluxDB: read again from the last written
                // position (a replay writes the same points once).
                tracing::error!(error = %e, "an InfluxDB write task failed; replaying from the cursor");
                let written = positions.written.influx.load(Ordering::Acquire);
                positions.read.influx.store(written, Ordering::Release);
                reader = JournalReader::new(&dir, written);
                continue;
            }
        }
        let write = InfluxWrite {
            ctx: ctx.clone(),
            client: client.clone(),
            cursor: cursor.clone(),
            positions: positions.clone(),
        };
        in_flight = Some(tokio::spawn(write.run(lines, points, last)));
    }
}

/// One batch's way into InfluxDB: retried until written (or refused as invalid), then the
/// cursor moves past it.
struct InfluxWrite {
    ctx: Arc<CollectorContext>,
    client: InfluxClient,
    cursor: FileCursor,
    positions: Arc<SinkPositions>,
}

impl InfluxWrite {
    async fn run(self, lines: String, mut points: u64, last: u64) {
        let mut backoff = Backoff::default();
        let body = bytes::Bytes::from(lines);
        while !body.is_empty() {
            match self.client.write(&body).await {
                Ok(()) => break,
                Err(e) if e.is_permanent() => {
                    tracing::error!(error = %e, points, "InfluxDB refused a batch; skipping it");
                    self.ctx
                        .counters
                        .influx_errors
                        .fetch_add(1, Ordering::Relaxed);
                    points = 0;
                    break;
                }
                Err(e) => {
                    self.ctx
                        .counters
                        .influx_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "InfluxDB write failed; retrying");
                    if e.is_missing_database() {
                        let _ = self.client.ensure_database().await;
                    }
                    backoff.wait().await;
                }
            }
        }
        self.ctx
            .counters
            .points_written
            .fetch_add(points, Ordering::Relaxed);
        store_cursor(&self.cursor, last).await;
        self.positions.written.influx.store(last, Ordering::Release);
    }
}

/// Records the archive sink takes from the journal at a time while a window gathers.
const ARCHIVE_CHUNK: usize = 5000;

/// One archive window being gathered.
struct ArchiveWindow {
    raw: RawWindow,
    /// `None` once building Parquet failed (short of a bug it cannot); the raw archive keeps the
    /// window either way.
    lake: Option<LakeWindow>,
    last: u64,
}

impl ArchiveWindow {
    fn bytes(&self) -> usize {
        self.raw.bytes() + self.lake.as_ref().map_or(0, LakeWindow::bytes)
    }

    async fn add(window: &mut Option<Self>, ctx: &CollectorContext, batch: &[Arc<Journaled>]) {
        let Some(first) = batch.first().map(|j| &j.record) else {
            return;
        };
        let w = window.get_or_insert_with(|| ArchiveWindow {
            raw: RawWindow::new(first),
            lake: Some(LakeWindow::new(first.no)),
            last: first.no,
        });
        let types = device_types(ctx, batch).await;
        if let Some(lake) = &mut w.lake {
            if let Err(e) = lake.add(&lake_rows(batch, &types)) {
                tracing::error!(error = %e, first = first.no, "cannot build the window's lake files");
                w.lake = None;
            }
        }
        // Every journaled record passed decoding at ingest, which holds the payload's device
        // equal to the topic's; a record that no longer decodes is filed by its topic.
        for j in batch {
            match j.message.device_id() {
                Some(device) => w.raw.add(device, &j.record),
                None => {
                    if let Some(device) = ctx.decoder.topic_device(&j.record.topic) {
                        w.raw.add(&device, &j.record);
                    }
                }
            }
            w.last = j.record.no;
        }
    }

    fn finish(self) -> Vec<(String, Vec<u8>)> {
        let mut objects = match self.lake.map(LakeWindow::finish) {
            Some(Ok(files)) => files,
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot finish the window's lake files");
                Vec::new()
            }
            None => Vec::new(),
        };
        objects.extend(self.raw.finish());
        objects
    }
}

/// Writes the archive per window: the journal is read in chunks as it grows, each chunk added to
/// the window's raw objects and lake files at once (so a window holds bytes, not records), and
/// the window is written when it is `flush_interval_secs` old or holds `max_window_bytes`.
async fn archive_sink(
    ctx: Arc<CollectorContext>,
    store: ObjectStore,
    mut reader: JournalReader,
    end: JournalEnd,
    cursor: FileCursor,
    positions: Arc<SinkPositions>,
) {
    let settings = &ctx.settings.archive;
    let age = Duration::from_secs(settings.flush_interval_secs.max(1));
    loop {
        end.wait_past(reader.next_no() - 1).await;
        let deadline = tokio::time::Instant::now() + age;
        let mut window = None;
        loop {
            let read = &positions.read.archive;
            let (r, batch) = read_journaled(&ctx, reader, end.current(), ARCHIVE_CHUNK, read).await;
            reader = r;
            match batch {
                Ok(batch) => ArchiveWindow::add(&mut window, &ctx, &batch).await,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the journal");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            let full = window
                .as_ref()
                .is_some_and(|w| w.bytes() >= settings.max_window_bytes);
            if full || tokio::time::Instant::now() >= deadline {
                break;
            }
            if end.current() < reader.next_no() {
                gather_tick(deadline).await;
            }
        }
        let Some(window) = window else {
            continue;
        };
        let last = window.last;
        let mut pending = window.finish();
        let mut backoff = Backoff::default();
        loop {
            let count = pending.len() as u64;
            let (failed, error) = store.put_all(pending).await;
            ctx.counters
                .archive_objects
                .fetch_add(count - failed.len() as u64, Ordering::Relaxed);
            let Some(e) = error else { break };
            tracing::warn!(error = %e, objects = failed.len(), "archive writes failed; retrying");
            ctx.counters.archive_errors.fetch_add(1, Ordering::Relaxed);
            pending = failed;
            backoff.wait().await;
            // A bucket removed or never created: make it (again).
            let _ = store.prepare().await;
        }
        store_cursor(&cursor, last).await;
        positions.written.archive.store(last, Ordering::Release);
    }
}

async fn device_types(ctx: &CollectorContext, batch: &[Arc<Journaled>]) -> Arc<DeviceTypeMap> {
    let devices = batch
        .iter()
        .filter_map(|j| j.message.device_id().map(DeviceId::as_str));
    ctx.device_types.lookup(&ctx.pool, devices).await
}

fn device_type<'a>(types: &'a DeviceTypeMap, reading: &Reading) -> Option<&'a str> {
    types
        .get(reading.device_id.as_str())
        .and_then(|t| t.as_deref())
}

/// The lake rows of decoded messages.
fn lake_rows<'a>(batch: &'a [Arc<Journaled>], types: &'a DeviceTypeMap) -> Vec<LakeRow<'a>> {
    batch
        .iter()
        .flat_map(|j| {
            let (r, seq) = (&j.record, j.message.seq());
            j.message
                .readings()
                .into_iter()
                .map(move |reading| LakeRow {
                    reading,
                    device_type: device_type(types, reading),
                    seq,
                    received_at: r.received,
                    topic: &r.topic,
                    journal_no: r.no,
                })
        })
        .collect()
}

async fn store_cursor(cursor: &FileCursor, last: u64) {
    let mut backoff = Backoff::default();
    while let Err(e) = cursor.store(last) {
        tracing::error!(error = %e, "cannot store a sink cursor; retrying");
        backoff.wait().await;
    }
}

/// How long the registry sink gathers batches into one PostgreSQL transaction: `last_seen` a
/// second late is harmless, and a busy fleet then costs one update per device per second instead
/// of one per device per batch. Batches that someone waits on (command answers, events awaiting
/// their ACK) are applied at once.
const REGISTRY_COALESCE: Duration = Duration::from_secs(1);

async fn registry_sink(
    ctx: Arc<CollectorContext>,
    mut reader: JournalReader,
    end: JournalEnd,
    cursor_name: String,
    positions: Arc<SinkPositions>,
) {
    let register = ctx.settings.mqtt.unknown_devices == UnknownDevicePolicy::Register;
    let qs = ctx.settings.mqtt.qs_prefix.clone();
    let mut sequences = loop {
        match SequenceState::load(&ctx.pool).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "registry sink waiting for PostgreSQL");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let source = (&end, &positions.read.registry);
    let mut batch = RegistryBatch::default();
    let mut pending_since: Option<tokio::time::Instant> = None;
    loop {
        // A pending batch waits for more records only until its flush time.
        if let Some(since) = pending_since {
            gather_tick(since + REGISTRY_COALESCE).await;
        }
        if end.current() >= reader.next_no() || pending_since.is_none() {
            let (r, records) =
                next_batch(&ctx, reader, source, 5000, Duration::from_millis(200)).await;
            reader = r;
            for j in &records {
                batch.add(j.record.no, j.record.received, &j.message, &mut sequences);
            }
            if let Some(last) = records.last() {
                batch.last = last.record.no;
                pending_since.get_or_insert_with(tokio::time::Instant::now);
            }
        }
        let Some(since) = pending_since else {
            continue;
        };
        if !batch.is_awaited() && since.elapsed() < REGISTRY_COALESCE {
            continue;
        }
        pending_since = None;
        let batch = std::mem::take(&mut batch);
        let mut backoff = Backoff::default();
        let outcomes = loop {
            match batch.apply(&ctx.pool, &cursor_name, register).await {
                Ok(outcomes) => break outcomes,
                Err(e) => {
                    tracing::warn!(error = %e, "registry write failed; retrying");
                    backoff.wait().await;
                }
            }
        };
        ctx.counters
            .registry_batches
            .fetch_add(1, Ordering::Relaxed);
        for (event, stored) in outcomes {
            let topic = format!("{qs}/{}/acks", event.device_id);
            let _ = ctx
                .publisher
                .publish(topic, registry::event_ack(&event, stored), false);
        }
        for (device, rejection) in &batch.rejected_events {
            ctx.counters.reject(rejection.reason.kind);
            let body = serde_json::json!({
                "error": rejection.reason.detail,
                "reason": rejection.reason.kind.as_str(),
                "topic": format!("{qs}/{device}/events"),
                "event_id": rejection.event_id,
                "payload": rejection.raw,
            });
            let _ = ctx.publisher.publish(
                format!("{qs}/deadletter"),
                body.to_string().into_bytes(),
                false,
            );
        }
        positions
            .written
            .registry
            .store(batch.last, Ordering::Release);
    }
}

async fn liveness(ctx: Arc<CollectorContext>) {
    let c = &ctx.settings.collector;
    let mut tick = tokio::time::interval(Duration::from_secs(c.liveness_check_secs.max(1)));
    loop {
        tick.tick().await;
        match registry::mark_silent_devices_offline(
            &ctx.pool,
            c.send_interval_secs,
            c.hello_interval_secs,
        )
        .await
        {
            Ok(devices) if !devices.is_empty() => {
                tracing::info!(count = devices.len(), "devices went offline")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "liveness check failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redeliveries_remember_the_most_recent_messages_only() {
        let mut r = Redeliveries::new();
        let first = Redeliveries::fingerprint("iot/a/telemetry", b"{}");
        r.remember(first);
        assert!(r.contains(first));
        assert!(!r.contains(Redeliveries::fingerprint("iot/b/telemetry", b"{}")));
        for i in 0..Redeliveries::CAPACITY as u64 {
            r.remember(Redeliveries::fingerprint("t", &i.to_le_bytes()));
        }
        assert!(!r.contains(first), "evicted after CAPACITY newer messages");
    }

    #[test]
    fn decoded_cache_keeps_what_some_sink_still_needs_up_to_its_capacity() {
        let cache = DecodedCache::new(4);
        let journaled = |no| {
            Arc::new(Journaled {
                record: Record {
                    no,
                    received: Utc::now(),
                    topic: format!("iot/d{no}/telemetry"),
                    payload: Vec::new(),
                },
                message: Message::Ignored,
            })
        };
        let numbers = |from, end, max| -> Vec<u64> {
            cache
                .take(from, end, max)
                .iter()
                .map(|j| j.record.no)
                .collect()
        };
        cache.extend(10, (10..13).map(journaled), 0);
        assert_eq!(numbers(9, 100, 10), [0u64; 0], "not held: read from disk");
        assert_eq!(numbers(10, 100, 10), [10, 11, 12]);
        assert_eq!(numbers(11, 100, 1), [11], "at most max");
        assert_eq!(numbers(10, 11, 10), [10, 11], "none past the journal's end");
        assert_eq!(numbers(13, 100, 10), [0u64; 0]);
        // Every sink has written through 10: 10 goes; capacity 4 drops the oldest beyond it.
        cache.extend(13, (13..16).map(journaled), 10);
        assert_eq!(numbers(10, 100, 10), [0u64; 0]);
        assert_eq!(numbers(11, 100, 10), [0u64; 0]);
        assert_eq!(numbers(12, 100, 10), [12, 13, 14, 15]);
        // A gap in numbering (a restart) starts over rather than misnumbering.
        cache.extend(100, (100..102).map(journaled), 10);
        assert_eq!(numbers(15, 200, 10), [0u64; 0]);
        assert_eq!(numbers(100, 200, 10), [100, 101]);
    }

    #[test]
    fn dedupe_drops_repeats_accepts_late_ones_and_restarts() {
        let d = DeviceId::parse("m").unwrap();
        let mut dedupe = Dedupe::default();
        let accepted: Vec<bool> = [1, 2, 2, 4, 3, 3, 4, 5, 0, 0, 1]
            .iter()
            .map(|s| dedupe.accept(&d, *s))
            .collect();
        assert_eq!(
            accepted,
            [true, true, false, true, true, false, false, true, true, false, true]
        );
        assert!(dedupe.accept(&d, 1000));
        assert!(dedupe.accept(&d, 10), "far below the window: a restart");
    }
}
