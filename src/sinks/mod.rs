//! Sinks: where journaled records go. One driver ([`driver`]) owns what every sink shares —
//! reading the journal's feed at the sink's own position, batching by records, bytes and time,
//! retrying with jittered backoff, telling retriable errors from permanent ones, and moving the
//! cursor only past what is written — and each sink module only encodes records into a batch and
//! writes a batch:
//!
//! - [`influxdb`]: line protocol, one write per batch;
//! - [`archive`]: raw JSON objects per device and Parquet lake files per date, per window;
//! - [`registry`]: PostgreSQL (liveness, firmware, sequence gaps, command answers, `qs/v1`
//!   events), with its cursor in the same transaction.
//!
//! A new sink is one module implementing [`Sink`] and [`Registered`], and one line in
//! [`registered_sinks!`] below: the collector starts it, and its name labels the metrics, filters
//! `GET /api/quarantine` and fills the OpenAPI document's enum ([`NAMES`]).

pub mod archive;
pub mod driver;
pub mod influxdb;
pub mod quarantine;
pub mod registry;

use std::future::Future;
use std::ops::RangeInclusive;
use std::sync::Arc;

use sqlx::PgPool;

use crate::configuration::{BatchSettings, Settings};
use crate::journal::{Feed, FileCursor, Journal, Journaled};
use crate::metrics::SinkMetrics;
use crate::pipeline::dead_letter::DeadLetters;
use crate::pipeline::enrich::DeviceTypes;
use crate::stores::broker::Publisher;
use crate::stores::influxdb::InfluxClient;
use crate::stores::objects::ObjectStore;
use crate::supervisor::Supervisor;
use crate::wire::Decoder;

/// Lists the sinks the collector runs, once: [`NAMES`] and [`spawn_all`] are made from it.
macro_rules! registered_sinks {
    ($($sink:ty),+ $(,)?) => {
        /// The name of every sink the collector runs, in the order they start.
        pub const NAMES: &[&str] = &[$(<$sink as Sink>::NAME),+];

        /// Starts every sink at its cursor under `supervisor`; returns those whose cursor lay
        /// outside the journal.
        pub async fn spawn_all(
            supervisor: &mut Supervisor,
            oversight: (&Feed, &driver::Oversight),
            context: &SinkContext<'_>,
        ) -> anyhow::Result<Vec<driver::Skipped>> {
            let mut skipped = Vec::new();
            $(
                let batching = <$sink as Registered>::batching(context.settings);
                let sink = <$sink as Registered>::build(context);
                skipped.extend(driver::spawn(supervisor, oversight, batching, sink).await?);
            )+
            Ok(skipped)
        }
    };
}

registered_sinks!(
    influxdb::InfluxSink,
    archive::ArchiveSink,
    registry::RegistrySink,
);

/// What the collector hands every sink to build itself from.
pub struct SinkContext<'a> {
    pub settings: &'a Settings,
    pub pool: &'a PgPool,
    pub influx: &'a InfluxClient,
    pub objects: &'a ObjectStore,
    pub publisher: &'a Publisher,
    pub journal: &'a Journal,
    pub feed: &'a Feed,
    pub decoder: &'a Arc<Decoder>,
    pub device_types: &'a Arc<DeviceTypes>,
    pub dead_letters: &'a DeadLetters,
    pub metrics: &'a SinkMetrics,
}

impl SinkContext<'_> {
    /// The sink's cursor file in the journal directory.
    pub fn file_cursor(&self, sink: &str) -> FileCursor {
        FileCursor::new(self.journal, sink)
    }
}

/// A sink the collector runs: how it is built and how it batches.
pub trait Registered: Sink {
    fn build(context: &SinkContext<'_>) -> Self;
    fn batching(settings: &Settings) -> BatchSettings;
}

/// What a sink does with journaled records: gathers them into a batch and hands a finished batch
/// to its [`Write`]. The driver calls these in journal order, one batch at a time, while the
/// previous batch may still be being written.
pub trait Sink: Clone + Send + Sync + 'static {
    /// Its name in logs, task names and cursor files.
    const NAME: &'static str;
    /// Records being gathered.
    type Batch: Send;
    /// A finished batch, ready to write.
    type Payload: Send + 'static;
    type Writer: Write<Self::Payload>;
    type Cursor: Cursor;

    /// Readies the sink before it reads (loads state it keeps between batches). A failure
    /// restarts the sink with backoff.
    fn prepare(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send {
        async { Ok(()) }
    }

    /// An empty batch whose first record will be `first`.
    fn batch(&self, first: &Journaled) -> Self::Batch;

    /// Encodes records into the batch.
    fn add(
        &mut self,
        batch: &mut Self::Batch,
        records: &[Arc<Journaled>],
    ) -> impl Future<Output = ()> + Send;

    /// The batch's size as it counts against `max_bytes`.
    fn bytes(batch: &Self::Batch) -> usize;

    /// Whether someone waits on this batch, so it is written now rather than at its timeout.
    fn urgent(_batch: &Self::Batch) -> bool {
        false
    }

    fn finish(&mut self, batch: Self::Batch) -> Self::Payload;

    fn writer(&self) -> Self::Writer;

    fn cursor(&self) -> Self::Cursor;
}

/// Writes finished batches; cloned into each write.
pub trait Write<P>: Clone + Send + Sync + 'static {
    /// Writes the payload, which holds the journal's records `span`. Records the store refuses
    /// for good go to `refused` (the driver quarantines them) and the rest is written. After a
    /// retriable failure it leaves in `payload` only what is still to write, for the next
    /// attempt. `Err` with [`ErrorKind::Refused`] refuses the whole span.
    fn write(
        &self,
        payload: &mut P,
        span: RangeInclusive<u64>,
        refused: &mut Vec<Refusal>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// What to try before the next attempt after a retriable error (create a missing database
    /// or bucket).
    fn recover(&self, _error: &SinkError) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Where a sink keeps how far it has written.
pub trait Cursor: Clone + Send + Sync + 'static {
    fn load(&self) -> impl Future<Output = anyhow::Result<u64>> + Send;
    /// Stores the position after a write through `last`.
    fn store(&self, last: u64) -> impl Future<Output = Result<(), SinkError>> + Send;
}

impl Cursor for FileCursor {
    async fn load(&self) -> anyhow::Result<u64> {
        Ok(FileCursor::load(self)?)
    }

    async fn store(&self, last: u64) -> Result<(), SinkError> {
        FileCursor::store(self, last).map_err(|e| SinkError::retriable(format!("cursor: {e}")))
    }
}

/// A record the store refuses for good, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub journal_no: u64,
    pub reason: String,
}

/// Why a write failed, and what the driver does about it.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Network trouble, an overloaded or restarting store: retried.
    Retriable,
    /// The store refuses devicehub itself (credentials, permissions, a missing bucket or
    /// database): retried, and `/readyz` fails with the reason until a write succeeds.
    Misconfigured,
    /// The store refuses the data itself and the sink cannot tell which record: every record
    /// of the write is quarantined.
    Refused,
}

impl SinkError {
    pub fn retriable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Retriable, message)
    }

    pub fn misconfigured(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Misconfigured, message)
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Refused, message)
    }

    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}
