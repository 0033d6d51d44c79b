//! The feed that hands journaled records to the sinks, each at its own position.
//!
//! The most recently journaled records wait here decoded ([`DecodedCache`]): sinks, which usually
//! read near the head of the journal, take them from memory instead of reading the files and
//! parsing the same JSON again. A sink that misses (it fell behind, or the process restarted)
//! reads the files and decodes the record itself, with the same result: ingest decodes with the
//! journal's microsecond receive time.

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::{DamageLog, JournalEnd, JournalReader, Record};
use crate::domain::Message;

/// How a record read back from the files becomes a message again (the pipeline's decoder).
pub trait Decode: Send + Sync {
    /// Every journaled record passed decoding at ingest; should one not now (the decoder's
    /// settings changed across a restart), it becomes [`Message::Ignored`] and goes to the raw
    /// archive only.
    fn decode_record(&self, record: &Record) -> Message;
}

/// A journaled record with its message as decoded.
#[derive(Debug)]
pub struct Journaled {
    pub record: Record,
    pub message: Message,
}

/// Where one sink stands: how far it has written (its cursor, for journal clean-up and
/// backpressure) and read (the cache may drop what every sink has read), and when the batches it
/// has read but not written were received (its lag in seconds, for `/metrics`).
#[derive(Debug, Default)]
pub struct SinkPosition {
    written: AtomicU64,
    read: AtomicU64,
    /// The first record and its receive time of each batch read and not yet written, oldest
    /// first (one being written and one gathering, at most a few).
    pending: Mutex<VecDeque<(u64, DateTime<Utc>)>>,
}

impl SinkPosition {
    /// The last record this sink has written.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Records that everything through `last` is written (once the sink's cursor says so).
    pub fn mark_written(&self, last: u64) {
        self.written.fetch_max(last, Ordering::AcqRel);
        if let Ok(mut pending) = self.pending.lock() {
            while pending.front().is_some_and(|(first, _)| *first <= last) {
                pending.pop_front();
            }
        }
    }

    /// A batch starting at record `first`, received at `received`, is being gathered.
    pub fn batch_started(&self, first: u64, received: DateTime<Utc>) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.push_back((first, received));
        }
    }

    /// When the oldest record read but not yet written was received (`None`: caught up).
    pub fn oldest_pending(&self) -> Option<DateTime<Utc>> {
        self.pending.lock().ok()?.front().map(|(_, t)| *t)
    }
}

/// The journal as the sinks see it. Clones share the cache and the positions.
#[derive(Clone)]
pub struct Feed {
    dir: PathBuf,
    end: JournalEnd,
    cache: Arc<DecodedCache>,
    decoder: Arc<dyn Decode>,
    positions: Arc<Mutex<Vec<Arc<SinkPosition>>>>,
    damage: DamageLog,
}

impl Feed {
    /// A feed over the journal in `dir`, keeping up to `cache_records` decoded, of about
    /// `cache_bytes` at most; its readers report damage to `damage`.
    pub fn new(
        (dir, damage): (PathBuf, DamageLog),
        end: JournalEnd,
        decoder: Arc<dyn Decode>,
        (cache_records, cache_bytes): (usize, usize),
    ) -> Self {
        Self {
            dir,
            end,
            cache: Arc::new(DecodedCache::new(cache_records, cache_bytes)),
            decoder,
            positions: Default::default(),
            damage,
        }
    }

    /// Adds a sink that has written everything through `written`. Every sink is registered
    /// before records are appended, so the journal never deletes what a sink still needs.
    pub fn register(&self, written: u64) -> Arc<SinkPosition> {
        let position = Arc::new(SinkPosition {
            written: AtomicU64::new(written),
            read: AtomicU64::new(written),
            pending: Mutex::default(),
        });
        if let Ok(mut positions) = self.positions.lock() {
            positions.push(position.clone());
        }
        position
    }

    /// A reader for the sink at `position`, starting after what it has written (a sink that
    /// starts again reads what it had read but not written once more).
    pub fn reader(&self, position: Arc<SinkPosition>) -> FeedReader {
        let written = position.written();
        position.read.store(written, Ordering::Release);
        if let Ok(mut pending) = position.pending.lock() {
            pending.clear();
        }
        FeedReader {
            reader: JournalReader::reporting(&self.dir, written, self.damage.clone()),
            feed: self.clone(),
            position,
        }
    }

    /// The oldest record still in the journal's files (the next one to be written when none is).
    pub fn oldest(&self) -> io::Result<u64> {
        let segments = super::list_segments(&self.dir)?;
        Ok(segments.first().map_or(self.end.current() + 1, |s| s.first))
    }

    /// The last record written.
    pub fn newest(&self) -> u64 {
        self.end.current()
    }

    /// The last record every sink has written (0 before any sink is registered).
    pub fn written_by_all(&self) -> u64 {
        self.min(|p| &p.written)
    }

    fn read_by_all(&self) -> u64 {
        self.min(|p| &p.read)
    }

    fn min(&self, of: impl Fn(&SinkPosition) -> &AtomicU64) -> u64 {
        self.positions
            .lock()
            .ok()
            .and_then(|positions| {
                positions
                    .iter()
                    .map(|p| of(p).load(Ordering::Acquire))
                    .min()
            })
            .unwrap_or(0)
    }

    /// The records `first..=last`, read back from the journal's files and decoded (for the rare
    /// paths that need records again after their batch: isolating a record a store refuses).
    /// They are still there: a sink's records stay until its cursor is past them.
    pub async fn read_back(&self, first: u64, last: u64) -> io::Result<Vec<Arc<Journaled>>> {
        let count = (last + 1).saturating_sub(first) as usize;
        let reader =
            JournalReader::reporting(&self.dir, first.saturating_sub(1), self.damage.clone());
        let (_, records) = reader.read_blocking(last, count).await;
        Ok(records?
            .into_iter()
            .map(|record| {
                let message = self.decoder.decode_record(&record);
                Arc::new(Journaled { record, message })
            })
            .collect())
    }

    /// Adds records just journaled as `first..` to the cache, dropping what every sink has read.
    pub fn cache(&self, first: u64, records: impl IntoIterator<Item = Arc<Journaled>>) {
        self.cache.extend(first, records, self.read_by_all());
    }
}

/// One sink's reading end: from the cache when it holds the next record, else from the files.
pub struct FeedReader {
    reader: JournalReader,
    feed: Feed,
    position: Arc<SinkPosition>,
}

impl FeedReader {
    /// Whether the journal has records this reader has not read.
    pub fn has_more(&self) -> bool {
        self.feed.end.current() >= self.reader.next_no()
    }

    /// Waits until the journal has records this reader has not read.
    pub async fn wait_for_more(&self) {
        self.feed.end.wait_past(self.reader.next_no() - 1).await;
    }

    /// Reads up to `max` records after the reader's position.
    pub async fn read(&mut self, max: usize) -> io::Result<Vec<Arc<Journaled>>> {
        let end = self.feed.end.current();
        let next = self.reader.next_no();
        if next > end || max == 0 {
            return Ok(Vec::new());
        }
        let cached = self.feed.cache.take(next, end, max);
        if let Some(last) = cached.last() {
            self.reader.skip_to(last.record.no);
            self.position.read.store(last.record.no, Ordering::Release);
            return Ok(cached);
        }
        let reader = std::mem::replace(
            &mut self.reader,
            JournalReader::reporting(&self.feed.dir, next - 1, self.feed.damage.clone()),
        );
        let (reader, records) = reader.read_blocking(end, max).await;
        self.reader = reader;
        self.position
            .read
            .store(self.reader.next_no() - 1, Ordering::Release);
        let decoder = &self.feed.decoder;
        Ok(records?
            .into_iter()
            .map(|record| {
                let message = decoder.decode_record(&record);
                Arc::new(Journaled { record, message })
            })
            .collect())
    }

    pub fn position(&self) -> Arc<SinkPosition> {
        self.position.clone()
    }
}

/// The most recently journaled records, decoded, by journal number. Entries every sink has read
/// are dropped (a sink that needs one again, replaying after a failed write, reads the journal),
/// and beyond a count or an estimate of bytes the oldest: a sink that falls behind reads the
/// journal's files instead, so a slow store never grows the collector's memory.
pub struct DecodedCache {
    inner: Mutex<DecodedWindow>,
    capacity: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct DecodedWindow {
    first: u64,
    entries: VecDeque<Arc<Journaled>>,
    bytes: usize,
}

/// An estimate of what a cached record holds: its topic and payload, and the decoded message
/// (readings take about the payload's size again).
fn footprint(j: &Journaled) -> usize {
    j.record.topic.len() + 2 * j.record.payload.len() + 256
}

impl DecodedCache {
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            inner: Default::default(),
            capacity,
            max_bytes,
        }
    }

    /// Adds records journaled as `first..`, forgetting what every sink has read (through
    /// `done`) and the oldest beyond capacity.
    pub fn extend(&self, first: u64, entries: impl IntoIterator<Item = Arc<Journaled>>, done: u64) {
        let Ok(mut window) = self.inner.lock() else {
            return;
        };
        if window.first + window.entries.len() as u64 != first {
            window.entries.clear();
            window.bytes = 0;
            window.first = first;
        }
        for entry in entries {
            window.bytes += footprint(&entry);
            window.entries.push_back(entry);
        }
        let consumed = done.saturating_add(1).saturating_sub(window.first);
        let mut drop = 0u64;
        while let Some(oldest) = window.entries.front() {
            let over = window.entries.len() > self.capacity || window.bytes > self.max_bytes;
            if drop >= consumed && !over {
                break;
            }
            window.bytes -= footprint(oldest);
            window.entries.pop_front();
            drop += 1;
        }
        window.first += drop;
    }

    /// Up to `max` consecutive records from number `from` on, none past `end`; empty when the
    /// cache does not hold `from`.
    pub fn take(&self, from: u64, end: u64, max: usize) -> Vec<Arc<Journaled>> {
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

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn decoded_cache_keeps_what_some_sink_still_needs_up_to_its_capacity() {
        let cache = DecodedCache::new(4, usize::MAX);
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
        // Every sink has read through 10: 10 goes; capacity 4 drops the oldest beyond it.
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
    fn decoded_cache_keeps_at_most_its_bytes() {
        let big = |no| {
            Arc::new(Journaled {
                record: Record {
                    no,
                    received: Utc::now(),
                    topic: "iot/d/telemetry".into(),
                    payload: vec![b'x'; 100_000],
                },
                message: Message::Ignored,
            })
        };
        // Room for two records of 100 kB (estimated at twice their payload).
        let cache = DecodedCache::new(1000, 450_000);
        cache.extend(1, (1..=5).map(big), 0);
        let held: Vec<u64> = cache.take(1, 5, 10).iter().map(|j| j.record.no).collect();
        assert_eq!(held, [0u64; 0], "the oldest went");
        let held: Vec<u64> = cache.take(4, 5, 10).iter().map(|j| j.record.no).collect();
        assert_eq!(held, [4, 5]);
    }
}
