//! The registry sink: device liveness (`last_seen`, `connection_status`), firmware versions,
//! sequence tracking with `sequence_gap` alerts, command status from acks, and seed 003 events
//! (stored idempotently on `event_id`, then acknowledged on MQTT). One PostgreSQL transaction per
//! batch, which also moves this sink's cursor: a batch is applied exactly once. Batches gather
//! for up to a second (`last_seen` a second late is harmless, and a busy fleet then costs one
//! update per device per second), except those someone waits on: command answers, and events
//! whose devices wait for their ACKs.

mod batch;
mod liveness;

use std::ops::RangeInclusive;
use std::sync::Arc;

use sqlx::PgPool;

pub use batch::{RegistryBatch, SequenceState};
pub use liveness::Liveness;

use super::{Cursor, ErrorKind, Refusal, SinkError, Write};
use crate::configuration::{Settings, UnknownDevicePolicy};
use crate::domain::QsEvent;
use crate::journal::{Feed, Journaled};
use crate::pipeline::dead_letter::DeadLetters;
use crate::stores::broker::Publisher;

#[derive(Clone)]
pub struct RegistrySink {
    pool: PgPool,
    /// Loaded by `prepare`, from PostgreSQL.
    sequences: Option<SequenceState>,
    /// Whether missing sequence numbers raise `sequence_gap` alerts: not in a shared
    /// subscription (`mqtt.shared_group`), where each collector sees only its share of a
    /// device's messages and the rest are not missing.
    gap_alerts: bool,
    writer: RegistryWriter,
}

impl RegistrySink {
    pub fn new(
        pool: PgPool,
        cursor_name: String,
        settings: &Settings,
        (publisher, dead_letters): (Publisher, DeadLetters),
        feed: Feed,
    ) -> Self {
        let writer = RegistryWriter {
            pool: pool.clone(),
            feed,
            cursor: RegistryCursor {
                pool: pool.clone(),
                name: cursor_name,
            },
            // Ingest admitted only known devices and ones a policy lets register.
            register_unknown: settings.mqtt.unknown_devices == UnknownDevicePolicy::Register
                || settings
                    .mqtt
                    .unknown_devices_by_protocol
                    .values()
                    .any(|p| *p == UnknownDevicePolicy::Register),
            qs_prefix: settings.mqtt.qs_prefix.clone(),
            publisher,
            dead_letters,
        };
        Self {
            pool,
            sequences: None,
            gap_alerts: settings.mqtt.shared_group.trim().is_empty(),
            writer,
        }
    }
}

impl super::Registered for RegistrySink {
    /// Its cursor is a row in PostgreSQL, written in the same transaction as the batch, named
    /// by the collector's client id and its journal.
    fn build(context: &super::SinkContext<'_>) -> Self {
        let cursor = format!(
            "{}/{}/registry",
            context.settings.mqtt.client_id,
            context.journal.id()
        );
        Self::new(
            context.pool.clone(),
            cursor,
            context.settings,
            (context.publisher.clone(), context.dead_letters.clone()),
            context.feed.clone(),
        )
    }

    fn batching(settings: &Settings) -> crate::configuration::BatchSettings {
        settings.registry.batch
    }
}

impl super::Sink for RegistrySink {
    const NAME: &'static str = "registry";
    type Batch = RegistryBatch;
    type Payload = RegistryBatch;
    type Writer = RegistryWriter;
    type Cursor = RegistryCursor;

    async fn prepare(&mut self) -> anyhow::Result<()> {
        self.sequences = Some(SequenceState::load(&self.pool).await?);
        Ok(())
    }

    fn batch(&self, _first: &Journaled) -> RegistryBatch {
        RegistryBatch::default()
    }

    async fn add(&mut self, batch: &mut RegistryBatch, records: &[Arc<Journaled>]) {
        let sequences = self.sequences.get_or_insert_with(SequenceState::default);
        let sequenced = records
            .iter()
            .filter(|j| j.message.seq().is_some())
            .filter_map(|j| j.message.device_id().map(|d| d.as_str()));
        sequences.restore(&self.pool, sequenced).await;
        for j in records {
            batch.add(j.record.received, &j.message, sequences);
        }
        if !self.gap_alerts {
            batch.forget_gaps();
        }
    }

    fn bytes(batch: &RegistryBatch) -> usize {
        batch.bytes()
    }

    fn urgent(batch: &RegistryBatch) -> bool {
        batch.is_awaited()
    }

    fn finish(&mut self, batch: RegistryBatch) -> RegistryBatch {
        batch
    }

    fn writer(&self) -> RegistryWriter {
        self.writer.clone()
    }

    fn cursor(&self) -> RegistryCursor {
        self.writer.cursor.clone()
    }
}

#[derive(Clone)]
pub struct RegistryWriter {
    pool: PgPool,
    /// To read a batch's records back when PostgreSQL refuses one of them.
    feed: Feed,
    cursor: RegistryCursor,
    register_unknown: bool,
    qs_prefix: String,
    publisher: Publisher,
    dead_letters: DeadLetters,
}

impl Write<RegistryBatch> for RegistryWriter {
    /// Applies the batch with the cursor in one transaction, then acknowledges its events and
    /// dead-letters the ones that could not be stored. When PostgreSQL refuses the data itself,
    /// the batch's records are applied again in halves, and so on down to the records it refuses
    /// one by one (`sequence_gap` alerts of such a batch are not raised again).
    async fn write(
        &self,
        batch: &mut RegistryBatch,
        span: RangeInclusive<u64>,
        refused: &mut Vec<Refusal>,
    ) -> Result<(), SinkError> {
        match batch
            .apply(
                &self.pool,
                (&self.cursor.name, *span.end()),
                self.register_unknown,
            )
            .await
        {
            Ok(outcomes) => {
                self.answer(outcomes, batch);
                Ok(())
            }
            Err(e) => match error_kind(&e) {
                ErrorKind::Refused => self.isolate(span, refused).await,
                kind => Err(SinkError {
                    kind,
                    message: format!("registry: {e}"),
                }),
            },
        }
    }
}

impl RegistryWriter {
    fn answer(&self, outcomes: Vec<(QsEvent, bool)>, batch: &RegistryBatch) {
        for (event, stored) in outcomes {
            let topic = format!("{}/{}/acks", self.qs_prefix, event.device_id);
            if let Err(e) = self.publisher.publish(topic, event.ack(stored), false) {
                tracing::warn!(error = %e, "cannot publish an event ACK");
            }
        }
        for (device, rejection) in &batch.rejected_events {
            self.dead_letters.event(device, rejection);
        }
    }

    /// Applies `span` in ever smaller parts until the records PostgreSQL refuses stand alone.
    async fn isolate(
        &self,
        span: RangeInclusive<u64>,
        refused: &mut Vec<Refusal>,
    ) -> Result<(), SinkError> {
        let records = self
            .feed
            .read_back(*span.start(), *span.end())
            .await
            .map_err(|e| SinkError::retriable(format!("cannot read the batch back: {e}")))?;
        let mut todo: Vec<_> = std::iter::once(0..records.len()).collect();
        while let Some(range) = todo.pop() {
            let Some(last) = records[range.clone()].last().map(|j| j.record.no) else {
                continue;
            };
            let mut batch = RegistryBatch::default();
            let mut sequences = SequenceState::default();
            for j in &records[range.clone()] {
                batch.add(j.record.received, &j.message, &mut sequences);
            }
            match batch
                .apply(&self.pool, (&self.cursor.name, last), self.register_unknown)
                .await
            {
                Ok(outcomes) => self.answer(outcomes, &batch),
                Err(e) if error_kind(&e) == ErrorKind::Refused => {
                    if range.len() == 1 {
                        refused.push(Refusal {
                            journal_no: last,
                            reason: format!("PostgreSQL: {e}"),
                        });
                    } else {
                        let middle = range.start + range.len() / 2;
                        todo.push(middle..range.end);
                        todo.push(range.start..middle);
                    }
                }
                Err(e) => {
                    return Err(SinkError {
                        kind: error_kind(&e),
                        message: format!("registry: {e}"),
                    })
                }
            }
        }
        Ok(())
    }
}

/// What a PostgreSQL error means for a write: data it refuses (SQLSTATE classes 22, 23, 54),
/// credentials or privileges (28, 42), anything else (connections, restarts) is retried.
fn error_kind(e: &sqlx::Error) -> ErrorKind {
    let code = e.as_database_error().and_then(|d| d.code());
    match code.as_deref().map(|c| c.get(..2).unwrap_or(c)) {
        Some("22" | "23" | "54") => ErrorKind::Refused,
        Some("28" | "42") => ErrorKind::Misconfigured,
        _ => ErrorKind::Retriable,
    }
}

/// The registry sink's position, in PostgreSQL (`collector_cursors`), written by the same
/// transaction as each batch.
#[derive(Clone)]
pub struct RegistryCursor {
    pool: PgPool,
    name: String,
}

impl Cursor for RegistryCursor {
    async fn load(&self) -> anyhow::Result<u64> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM collector_cursors WHERE name = $1")
                .bind(&self.name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(position.unwrap_or(0).max(0) as u64)
    }

    /// Each batch's transaction stores it; this moves it past records refused at the end of a
    /// batch, and never back.
    async fn store(&self, last: u64) -> Result<(), SinkError> {
        sqlx::query(
            "INSERT INTO collector_cursors (name, position) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET position = GREATEST(collector_cursors.position, EXCLUDED.position), \
             updated_at = now()",
        )
        .bind(&self.name)
        .bind(last as i64)
        .execute(&self.pool)
        .await
        .map_err(|e| SinkError::retriable(format!("registry cursor: {e}")))?;
        Ok(())
    }
}
