//! The middle of the data flow: `sources/` (MQTT; pollers later) → `pipeline/` → `journal/` →
//! `sinks/`. Ingest ([`Ingest`]) takes what a source hands over, in batches of whatever has
//! arrived: decodes each message ([`crate::wire`]), applies the acceptance policy ([`policy`]), drops
//! repeats and redeliveries ([`dedupe`]), dead-letters what it cannot take ([`dead_letter`]),
//! appends the rest to the journal, and only then acknowledges the batch to its source. Sinks
//! enrich what they read with the registry's device types ([`enrich`]).
//!
//! Backpressure: while the journal holds `collector.max_journal_bytes` that some sink has not
//! yet written, ingest holds its acknowledgements, so the broker keeps the rest.

pub mod dead_letter;
pub mod dedupe;
pub mod enrich;
pub mod idle;
pub mod policy;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, Notify};

use crate::configuration::FsyncPolicy;
use crate::domain::Message;
use crate::journal::{Decode, Entry, Feed, Journal, Journaled, Record};
use crate::metrics::IngestMetrics;
use crate::retry::Backoff;
use crate::wire::Decoder;
use dead_letter::DeadLetters;
use dedupe::{Dedupers, Redeliveries};
use policy::Acceptance;

/// A message as a source hands it over.
#[derive(Debug)]
pub struct Incoming {
    pub topic: String,
    pub payload: Bytes,
    /// The broker marked it as sent before (MQTT DUP): after a crash it may already be journaled.
    pub redelivered: bool,
    /// The broker kept it (MQTT retain) and hands it to every new subscription, so to every
    /// restart: it is what the device said then, not something it says now.
    pub retained: bool,
    /// How to acknowledge it once journaled (QoS 1), if the source needs to.
    pub ack: Option<Ack>,
}

/// A QoS 1 acknowledgement owed on one connection of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub connection: u64,
    pub packet_id: u16,
}

/// Acknowledgements ingest owes a source, handed back in one batch per journaled batch (the
/// source writes them in one flush: rumqttc's own `ack` writes and flushes each PUBACK on its
/// own, a system call per message here and a read per message in the broker).
#[derive(Default)]
pub struct AckQueue {
    pending: Mutex<Vec<Ack>>,
    ready: Notify,
    closed: std::sync::atomic::AtomicBool,
}

impl AckQueue {
    fn push(&self, acks: impl IntoIterator<Item = Ack>) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.extend(acks);
        }
        self.ready.notify_one();
    }

    /// What is owed now.
    pub fn take(&self) -> Vec<Ack> {
        self.pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }

    /// Waits until acknowledgements are owed, or ingest has finished.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Whether ingest has finished: nothing more will be owed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.ready.notify_one();
    }
}

impl Decode for Decoder {
    fn decode_record(&self, record: &Record) -> Message {
        self.decode(&record.topic, &record.payload, record.received)
            .unwrap_or_else(|rejection| {
                tracing::warn!(no = record.no, reason = %rejection.kind, detail = %rejection.detail,
                    "a journaled message no longer decodes; archived raw only");
                Message::Ignored
            })
    }
}

/// A sync of the journal under way, and the acknowledgements waiting for it.
struct Syncing {
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    acks: Vec<Ack>,
}

/// The most messages taken from a source in one batch.
const BATCH: usize = 4096;

/// How often the journal is handed to the disk (fsync) under `collector.fsync = "interval"`.
const SYNC_EVERY: Duration = Duration::from_secs(1);

pub struct Ingest {
    pub pool: sqlx::PgPool,
    pub fsync: FsyncPolicy,
    pub decoder: Arc<Decoder>,
    pub acceptance: Acceptance,
    pub dedupers: Dedupers,
    pub journal: Journal,
    pub feed: Feed,
    pub dead_letters: DeadLetters,
    pub metrics: IngestMetrics,
    pub max_journal_bytes: u64,
    /// Live stream clients watching readings.
    pub live: crate::live::Hub,
}

impl Ingest {
    /// Takes messages until the source closes its end, then syncs the journal and tells the
    /// source that every acknowledgement owed has been handed back.
    pub async fn run(
        mut self,
        mut incoming: mpsc::Receiver<Incoming>,
        acks: Arc<AckQueue>,
    ) -> anyhow::Result<()> {
        let mut batch = Vec::with_capacity(BATCH);
        let mut last_sync = tokio::time::Instant::now();
        // `fsync = "batch"`: the acks of what is journaled wait for the next sync, which runs
        // while the next batch is taken (one in flight, covering everything journaled before
        // it started), so the disk's latency costs throughput only when it is the bottleneck.
        let mut syncing: Option<Syncing> = None;
        let mut unsynced: Vec<Ack> = Vec::new();
        loop {
            let first = tokio::select! {
                biased;
                done = async {
                    match syncing.as_mut() {
                        Some(s) => (&mut s.task).await,
                        // Not polled: the guard below holds it back while nothing syncs.
                        None => std::future::pending().await,
                    }
                }, if syncing.is_some() =>
                {
                    let covered = syncing.take().map(|s| s.acks).unwrap_or_default();
                    match done.map_err(std::io::Error::other).and_then(|r| r) {
                        Ok(()) => acks.push(covered),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot sync the journal; retrying (broker acks held)");
                            unsynced.splice(0..0, covered);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    if !unsynced.is_empty() {
                        syncing = Some(self.start_sync(std::mem::take(&mut unsynced)));
                    }
                    continue;
                }
                first = incoming.recv() => first,
            };
            let Some(first) = first else { break };
            batch.push(first);
            while batch.len() < BATCH {
                match incoming.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            let appended = self.take(&batch).await;
            let owed = batch.drain(..).filter_map(|m| m.ack);
            match self.fsync {
                FsyncPolicy::Batch if appended => {
                    unsynced.extend(owed);
                    if syncing.is_none() {
                        syncing = Some(self.start_sync(std::mem::take(&mut unsynced)));
                    }
                }
                FsyncPolicy::Interval if last_sync.elapsed() > SYNC_EVERY => {
                    last_sync = tokio::time::Instant::now();
                    acks.push(owed);
                    if let Ok(file) = self.journal.sync_handle() {
                        tokio::task::spawn_blocking(move || file.sync_data());
                    }
                }
                _ => acks.push(owed),
            }
        }
        self.finish(syncing, unsynced, &acks).await
    }

    /// At shutdown: the journal on disk, then the broker's acks of everything it holds; what
    /// every sink has written goes, so the next start finds the journal as small as it can be.
    async fn finish(
        &mut self,
        syncing: Option<Syncing>,
        mut unsynced: Vec<Ack>,
        acks: &AckQueue,
    ) -> anyhow::Result<()> {
        if let Some(s) = syncing {
            unsynced.extend(s.acks);
            let _ = s.task.await;
        }
        let synced = self.try_sync().await;
        if synced.is_ok() {
            acks.push(unsynced);
        }
        if let Err(e) = self.journal.remove_through(self.feed.written_by_all()) {
            tracing::warn!(error = %e, "cannot remove consumed journal segments");
        }
        acks.close();
        synced.map_err(|e| anyhow::anyhow!("cannot sync the journal: {e}"))
    }

    /// Starts handing the journal to the disk, for `acks`.
    fn start_sync(&self, acks: Vec<Ack>) -> Syncing {
        let file = self.journal.sync_handle();
        let task = tokio::task::spawn_blocking(move || file?.sync_data());
        Syncing { task, acks }
    }

    async fn try_sync(&self) -> std::io::Result<()> {
        let file = self.journal.sync_handle()?;
        tokio::task::spawn_blocking(move || file.sync_data())
            .await
            .map_err(std::io::Error::other)?
    }

    /// Decodes, filters and journals one batch; whether anything was appended.
    async fn take(&mut self, batch: &[Incoming]) -> bool {
        // Microseconds, as the journal keeps it: a record decoded again later (by a sink that
        // missed the decoded cache, or after a restart) gives exactly the same readings.
        let now = Utc::now();
        let now = DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
        // Decoded first, so that the devices the batch names are looked up in one query.
        let mut decoded = Vec::with_capacity(batch.len());
        for m in batch {
            self.metrics.received.inc();
            let fingerprint = Redeliveries::fingerprint(&m.topic, &m.payload);
            if let Some(message) = self.decode(m, fingerprint, now) {
                if m.retained && !retained_news(&message) {
                    self.metrics.retained_ignored.inc();
                    continue;
                }
                decoded.push((m, fingerprint, message));
            }
        }
        self.drop_stale_statuses(&mut decoded).await;
        self.acceptance
            .look_up(
                decoded
                    .iter()
                    .filter_map(|(_, _, message)| message.device_id()),
            )
            .await;
        let sequenced = decoded
            .iter()
            .filter(|(_, _, message)| message.seq().is_some())
            .filter_map(|(_, _, message)| message.device_id());
        self.dedupers.seq.restore(&self.pool, sequenced).await;
        let mut entries = Vec::with_capacity(decoded.len());
        let mut messages = Vec::with_capacity(decoded.len());
        for (m, fingerprint, message) in decoded {
            if self.accept(m, fingerprint, &message) {
                messages.push(message);
                entries.push(Entry {
                    received: now,
                    topic: m.topic.clone(),
                    payload: m.payload.to_vec(),
                });
            }
        }
        self.hold_while_the_journal_is_full().await;
        if entries.is_empty() {
            return false;
        }
        self.live.publish_readings(&messages);
        self.append(entries, messages).await;
        true
    }

    /// Keeps a retained status only if the device said it (`ts`) after anything the registry
    /// has heard from it: otherwise a retained `online` of a device long dead would mark it
    /// online at every restart.
    async fn drop_stale_statuses(&self, decoded: &mut Vec<Decoded<'_>>) {
        let ids: Vec<String> = decoded
            .iter()
            .filter(|(m, _, message)| m.retained && matches!(message, Message::Status { .. }))
            .filter_map(|(_, _, message)| message.device_id())
            .map(|d| d.as_str().to_owned())
            .collect();
        if ids.is_empty() {
            return;
        }
        type LastSeen = (String, Option<DateTime<Utc>>);
        let rows = sqlx::query_as::<_, LastSeen>(
            "SELECT device_id, last_seen FROM devices WHERE device_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await;
        let last_seen: std::collections::HashMap<String, Option<DateTime<Utc>>> = match rows {
            Ok(rows) => rows.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read last_seen; retained statuses applied as they are");
                return;
            }
        };
        let before = decoded.len();
        decoded.retain(|(m, _, message)| match message {
            Message::Status {
                device_id, said_at, ..
            } if m.retained => {
                let known = last_seen.get(device_id.as_str()).copied().flatten();
                said_at.is_some_and(|said| known.is_none_or(|seen| said > seen))
            }
            _ => true,
        });
        let dropped = (before - decoded.len()) as u64;
        self.metrics.retained_ignored.inc_by(dropped);
    }

    /// The message decoded, unless it is a redelivery of one journaled or is dead-lettered.
    fn decode(&mut self, m: &Incoming, fingerprint: u64, now: DateTime<Utc>) -> Option<Message> {
        if m.redelivered && self.dedupers.redeliveries.contains(fingerprint) {
            self.metrics.duplicates.inc();
            return None;
        }
        match self.decoder.decode(&m.topic, &m.payload, now) {
            Ok(message) => Some(self.dedupers.shelly.filter(&m.topic, message, now)),
            Err(rejection) => {
                self.dead_letters.message(&m.topic, &m.payload, &rejection);
                None
            }
        }
    }

    /// Whether a decoded message is journaled: its device admitted, not a repeat.
    fn accept(&mut self, m: &Incoming, fingerprint: u64, message: &Message) -> bool {
        if let Some(device) = message.device_id() {
            let protocol = self.decoder.protocol(&m.topic);
            if let Err(rejection) = self.acceptance.admits(device, protocol) {
                self.dead_letters.message(&m.topic, &m.payload, &rejection);
                return false;
            }
            if let Some(seq) = message.seq() {
                if !self.dedupers.seq.accept(device, seq) {
                    self.metrics.duplicates.inc();
                    return false;
                }
            }
        }
        if matches!(message, Message::Ignored) {
            return false;
        }
        self.dedupers.redeliveries.remember(fingerprint);
        true
    }

    /// Deletes what every sink has written; while the rest is over the limit, waits.
    async fn hold_while_the_journal_is_full(&mut self) {
        loop {
            if let Err(e) = self.journal.remove_through(self.feed.written_by_all()) {
                tracing::error!(error = %e, "cannot remove consumed journal segments");
            }
            let bytes = self.journal.bytes();
            self.metrics.journal_bytes.set(bytes as i64);
            if bytes < self.max_journal_bytes {
                return;
            }
            tracing::warn!(
                bytes,
                "journal full: holding broker acks until the sinks catch up"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Appends, handing the records to the feed's cache before readers learn of them; retries
    /// (with the acknowledgements held) until the disk takes them.
    async fn append(&mut self, mut entries: Vec<Entry>, mut decoded: Vec<Message>) {
        let mut backoff = Backoff::new();
        loop {
            let feed = &self.feed;
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
                feed.cache(first, journaled);
            };
            match self.journal.append_then(&mut entries, cache) {
                Ok(numbers) => {
                    self.metrics.accepted.inc_by(numbers.count() as u64);
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot write the journal; retrying (broker acks held)");
                    backoff.wait().await;
                }
            }
        }
    }
}

/// A message of a batch, decoded: what arrived, its fingerprint, what it says.
type Decoded<'a> = (&'a Incoming, u64, Message);

/// Whether a retained message can still say something new. Readings cannot: the broker hands
/// the same retained telemetry to every new subscription, which would make it a new reading at
/// every restart. Events and command answers are kept by their ids (a repeat changes nothing); a
/// status is a state, checked against the registry.
fn retained_news(message: &Message) -> bool {
    !matches!(
        message,
        Message::Telemetry { .. } | Message::Hello { .. } | Message::Shelly { .. }
    )
}
