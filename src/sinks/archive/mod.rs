//! The archive sink: per window of the journal, the raw payloads of each device as one JSON
//! object ([`raw`]) and every reading as a row of the Parquet lake ([`crate::lake`]), written to the
//! object store together. Objects are named by the journal number of the window's first record,
//! so a window replayed after a crash overwrites its objects instead of adding copies.

pub mod raw;

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use super::{Refusal, SinkError, Write};
use crate::journal::{FileCursor, Journaled};
use crate::lake::{LakeRow, LakeWindow};
use crate::metrics::SinkMetrics;
use crate::pipeline::enrich::{DeviceTypes, KnownTypes};
use crate::stores;
use crate::stores::objects::ObjectStore;
use crate::wire::Decoder;
use raw::RawWindow;

#[derive(Clone)]
pub struct ArchiveSink {
    store: ObjectStore,
    device_types: Arc<DeviceTypes>,
    decoder: Arc<Decoder>,
    cursor: FileCursor,
    metrics: SinkMetrics,
}

impl ArchiveSink {
    pub fn new(
        store: ObjectStore,
        device_types: Arc<DeviceTypes>,
        decoder: Arc<Decoder>,
        cursor: FileCursor,
        metrics: SinkMetrics,
    ) -> Self {
        Self {
            store,
            device_types,
            decoder,
            cursor,
            metrics,
        }
    }
}

impl super::Registered for ArchiveSink {
    fn build(context: &super::SinkContext<'_>) -> Self {
        Self::new(
            context.objects.clone(),
            context.device_types.clone(),
            context.decoder.clone(),
            context.file_cursor(<Self as super::Sink>::NAME),
            context.metrics.clone(),
        )
    }

    fn batching(settings: &crate::configuration::Settings) -> crate::configuration::BatchSettings {
        settings.archive.batch
    }
}

/// One window being gathered: raw bytes and encoded Parquet, not records.
pub struct Window {
    raw: RawWindow,
    /// `None` once building Parquet failed (short of a bug it cannot); the raw archive keeps the
    /// window either way.
    lake: Option<LakeWindow>,
}

/// A window's objects, ready to write, with the records each holds.
pub struct Objects {
    pending: stores::objects::Objects,
    records: HashMap<String, Vec<u64>>,
}

impl super::Sink for ArchiveSink {
    const NAME: &'static str = "archive";
    type Batch = Window;
    type Payload = Objects;
    type Writer = ArchiveWriter;
    type Cursor = FileCursor;

    fn batch(&self, first: &Journaled) -> Window {
        Window {
            raw: RawWindow::new(&first.record),
            lake: Some(LakeWindow::new(first.record.no)),
        }
    }

    async fn add(&mut self, window: &mut Window, records: &[Arc<Journaled>]) {
        let types = self.device_types.of(records).await;
        if let Some(lake) = &mut window.lake {
            if let Err(e) = lake.add(&lake_rows(records, &types)) {
                tracing::error!(error = %e, "cannot build the window's lake files");
                window.lake = None;
            }
        }
        // Every journaled record passed decoding at ingest, which holds the payload's device
        // equal to the topic's; a record that no longer decodes is filed by its topic.
        for j in records {
            match j.message.device_id() {
                Some(device) => window.raw.add(device, &j.record),
                None => {
                    if let Some(device) = self.decoder.topic_device(&j.record.topic) {
                        window.raw.add(&device, &j.record);
                    }
                }
            }
        }
    }

    fn bytes(window: &Window) -> usize {
        window.raw.bytes() + window.lake.as_ref().map_or(0, LakeWindow::bytes)
    }

    fn finish(&mut self, window: Window) -> Objects {
        let mut objects = match window.lake.map(LakeWindow::finish) {
            Some(Ok(files)) => files,
            Some(Err(e)) => {
                tracing::error!(error = %e, "cannot finish the window's lake files");
                Vec::new()
            }
            None => Vec::new(),
        };
        objects.extend(window.raw.finish());
        let mut records = HashMap::with_capacity(objects.len());
        let pending = objects
            .into_iter()
            .map(|(key, bytes, numbers)| {
                records.insert(key.clone(), numbers);
                (key, bytes)
            })
            .collect();
        Objects { pending, records }
    }

    fn writer(&self) -> ArchiveWriter {
        ArchiveWriter {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
        }
    }

    fn cursor(&self) -> FileCursor {
        self.cursor.clone()
    }
}

#[derive(Clone)]
pub struct ArchiveWriter {
    store: ObjectStore,
    metrics: SinkMetrics,
}

impl Write<Objects> for ArchiveWriter {
    /// Writes the window's objects. An object the store refuses for good gives up its records
    /// (every record with data in it); those that failed otherwise stay for the next attempt.
    async fn write(
        &self,
        objects: &mut Objects,
        _span: RangeInclusive<u64>,
        refused: &mut Vec<Refusal>,
    ) -> Result<(), SinkError> {
        let count = objects.pending.len() as u64;
        let failed = self
            .store
            .put_all(std::mem::take(&mut objects.pending))
            .await;
        self.metrics
            .archive_objects
            .inc_by(count - failed.len() as u64);
        let mut retry: Option<SinkError> = None;
        for (key, bytes, error) in failed {
            self.metrics.archive_errors.inc();
            if error.is_refused() {
                let reason = format!("archive object {key}: {error}");
                for &journal_no in objects.records.get(&key).into_iter().flatten() {
                    refused.push(Refusal {
                        journal_no,
                        reason: reason.clone(),
                    });
                }
                continue;
            }
            let left = if error.is_denied() {
                SinkError::misconfigured(error.to_string())
            } else {
                SinkError::retriable(error.to_string())
            };
            retry.get_or_insert(left);
            objects.pending.push((key, bytes));
        }
        match retry {
            None => Ok(()),
            Some(mut e) => {
                e.message = format!("{} ({} objects left)", e.message, objects.pending.len());
                Err(e)
            }
        }
    }

    /// A bucket removed or never created: make it (again).
    async fn recover(&self, _error: &SinkError) {
        if let Err(e) = self.store.prepare().await {
            tracing::debug!(error = %e, "cannot prepare the archive");
        }
    }
}

/// The lake rows of decoded messages.
fn lake_rows<'a>(batch: &'a [Arc<Journaled>], types: &'a KnownTypes) -> Vec<LakeRow<'a>> {
    batch
        .iter()
        .flat_map(|j| {
            let (r, seq) = (&j.record, j.message.seq());
            j.message
                .readings()
                .into_iter()
                .map(move |reading| LakeRow {
                    reading,
                    device_type: types.of(&reading.device_id),
                    seq,
                    received_at: r.received,
                    topic: &r.topic,
                    journal_no: r.no,
                })
        })
        .collect()
}
