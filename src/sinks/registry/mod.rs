//! The registry sink: device liveness (`last_seen`, `connection_status`), firmware versions,
//! sequence tracking with `sequence_gap` alerts, command status from acks, and seed 003 events
//! (stored idempotently on `event_id`, then acknowledged on MQTT). One PostgreSQL transaction per
//! batch, which also moves this sink's cursor: a batch is applied exactly once. Batches gather
//! for up to a second (`last_seen` a second late is harmless, and a busy fleet then costs one
//! update per device per second), except those someone waits on: command answers, and events
//! whose devices wait for their ACKs.

mod batch;
mod liveness;

use std::sync::Arc;

use sqlx::PgPool;

pub use batch::{RegistryBatch, SequenceState};
pub use liveness::Liveness;

use super::{Cursor, SinkError, Write};
use crate::configuration::{Settings, UnknownDevicePolicy};
use crate::journal::Journaled;
use crate::pipeline::dead_letter::DeadLetters;
use crate::stores::broker::Publisher;

#[derive(Clone)]
pub struct RegistrySink {
    pool: PgPool,
    /// Loaded by `prepare`, from PostgreSQL.
    sequences: Option<SequenceState>,
    writer: RegistryWriter,
}

impl RegistrySink {
    pub fn new(
        pool: PgPool,
        cursor_name: String,
        settings: &Settings,
        publisher: Publisher,
        dead_letters: DeadLetters,
    ) -> Self {
        let writer = RegistryWriter {
            pool: pool.clone(),
            cursor: RegistryCursor {
                pool: pool.clone(),
                name: cursor_name,
            },
            register_unknown: settings.mqtt.unknown_devices == UnknownDevicePolicy::Register,
            qs_prefix: settings.mqtt.qs_prefix.clone(),
            publisher,
            dead_letters,
        };
        Self {
            pool,
            sequences: None,
            writer,
        }
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
        for j in records {
            batch.add(j.record.received, &j.message, sequences);
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
    cursor: RegistryCursor,
    register_unknown: bool,
    qs_prefix: String,
    publisher: Publisher,
    dead_letters: DeadLetters,
}

impl Write<RegistryBatch> for RegistryWriter {
    /// Applies the batch with the cursor in one transaction, then acknowledges its events and
    /// dead-letters the ones that could not be stored.
    async fn write(&self, batch: &mut RegistryBatch, last: u64) -> Result<(), SinkError> {
        let outcomes = batch
            .apply(&self.pool, (&self.cursor.name, last), self.register_unknown)
            .await
            .map_err(|e| SinkError::retriable(format!("registry: {e}")))?;
        for (event, stored) in outcomes {
            let topic = format!("{}/{}/acks", self.qs_prefix, event.device_id);
            if let Err(e) = self.publisher.publish(topic, event.ack(stored), false) {
                tracing::warn!(error = %e, "cannot publish an event ACK");
            }
        }
        for (device, rejection) in &batch.rejected_events {
            self.dead_letters.event(device, rejection);
        }
        Ok(())
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

    /// Nothing left to do: the batch's transaction stored it.
    async fn store(&self, _last: u64) -> Result<(), SinkError> {
        Ok(())
    }
}
