//! The one sink driver. For every sink it reads the journal's feed from the sink's position,
//! gathers batches (by records, bytes and time), writes each batch — one write in flight while
//! the next batch gathers, completing in journal order — retries failed writes with jittered
//! backoff, quarantines what the store refuses for good and moves on, reports a store that
//! refuses devicehub itself (`/readyz`), and moves the cursor only past what is written or
//! quarantined. A sink that fails or panics is restarted by the supervisor from its cursor; what
//! it had read but not written is read again, and every store keeps one copy of a replay.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::quarantine::Quarantine;
use super::{Cursor, ErrorKind, Refusal, Sink, Write};
use crate::configuration::BatchSettings;
use crate::health::Health;
use crate::journal::{Feed, FeedReader, SinkPosition};
use crate::metrics::SinkMetrics;
use crate::retry::Backoff;
use crate::supervisor::{Supervisor, Wave};

/// What every sink's driver reports to.
#[derive(Clone)]
pub struct Oversight {
    pub quarantine: Arc<dyn Quarantine>,
    pub metrics: SinkMetrics,
    pub health: Arc<Health>,
}

impl Oversight {
    /// `sink` cannot write for a reason of configuration (`Some(reason)`: counted, and named by
    /// `/readyz`), or can again.
    fn misconfigured(&self, sink: &'static str, reason: Option<&str>) {
        self.metrics.misconfigured(sink, reason.is_some());
        self.health.sink_failing(sink, reason);
    }
}

/// Records taken from the feed at a time while a batch gathers: a batch grows in steps of at
/// most this many (fewer as it nears `max_bytes`), so a sink encodes as records arrive and a
/// batch overshoots its byte bound by little.
const READ_CHUNK: usize = 500;

/// How often a sink that has started a batch looks for more records. Waking on every append
/// (each batch the broker delivers) cost thousands of thread wake-ups a second under load; a
/// tick bounds that at the price of at most this much latency.
const GATHER_TICK: Duration = Duration::from_millis(20);

/// A sink's stored cursor pointed outside the journal, and where it starts instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub sink: &'static str,
    pub stored: u64,
    pub start: u64,
}

/// Starts `sink` under the supervisor, reading after its stored cursor. The sink's position is
/// registered with the feed before this returns, so the journal keeps what the sink needs.
///
/// A cursor before the journal's oldest record (the database restored or recreated while the
/// journal was kept, or segments removed by hand) starts at the oldest record; one past its
/// newest (a journal restored from an older copy) at the newest. Either is returned, for a
/// warning and an alert: what lies between is not written by this sink.
pub async fn spawn<S: Sink>(
    supervisor: &mut Supervisor,
    (feed, oversight): (&Feed, &Oversight),
    batch: BatchSettings,
    sink: S,
) -> anyhow::Result<Option<Skipped>> {
    let stored = sink
        .cursor()
        .load()
        .await
        .with_context(|| format!("cannot read the {} sink's cursor", S::NAME))?;
    let oldest = feed
        .oldest()
        .context("cannot list the journal's segments")?;
    let start = stored.clamp(oldest - 1, feed.newest().max(oldest - 1));
    let skipped = (start != stored).then_some(Skipped {
        sink: S::NAME,
        stored,
        start,
    });
    if let Some(s) = &skipped {
        tracing::warn!(
            sink = s.sink,
            cursor = s.stored,
            oldest,
            newest = feed.newest(),
            "the sink's cursor is outside the journal; starting after record {}",
            s.start
        );
    }
    let position = feed.register(start);
    oversight
        .metrics
        .started(S::NAME, feed.clone(), position.clone());
    let (feed, oversight) = (feed.clone(), oversight.clone());
    supervisor.spawn(format!("{} sink", S::NAME), Wave::Sinks, move |shutdown| {
        Driver {
            sink: sink.clone(),
            reader: feed.reader(position.clone()),
            batch,
            oversight: oversight.clone(),
            shutdown,
        }
        .run()
    });
    Ok(skipped)
}

struct Driver<S> {
    sink: S,
    reader: FeedReader,
    batch: BatchSettings,
    oversight: Oversight,
    shutdown: CancellationToken,
}

impl<S: Sink> Driver<S> {
    /// Runs until shutdown, when the batch being gathered is written at once and the driver
    /// returns once it is.
    async fn run(mut self) -> anyhow::Result<()> {
        self.sink.prepare().await?;
        let (writer, cursor) = (self.sink.writer(), self.sink.cursor());
        let mut in_flight: Option<AbortOnDropHandle<()>> = None;
        loop {
            let gathered = self.gather().await?;
            if let Some(previous) = in_flight.take() {
                previous
                    .await
                    .map_err(|e| anyhow::anyhow!("a write task failed: {e}"))?;
            }
            let Some((payload, span)) = gathered else {
                return Ok(());
            };
            let write = write_through::<S>(
                (writer.clone(), cursor.clone()),
                self.oversight.clone(),
                self.reader.position(),
                payload,
                span,
            );
            if self.shutdown.is_cancelled() {
                write.await;
                return Ok(());
            }
            in_flight = Some(AbortOnDropHandle::new(tokio::spawn(write)));
        }
    }

    /// The next batch and its journal numbers: from its first record until it holds
    /// `max_events` records or `max_bytes`, the sink says someone waits on it, `timeout_ms` has
    /// passed since its first record, or shutdown. `None` at shutdown before a first record.
    async fn gather(&mut self) -> anyhow::Result<Option<(S::Payload, RangeInclusive<u64>)>> {
        tokio::select! {
            () = self.reader.wait_for_more() => {}
            () = self.shutdown.cancelled() => return Ok(None),
        }
        let limits = self.batch;
        let deadline = Instant::now() + Duration::from_millis(limits.timeout_ms);
        let mut batch: Option<S::Batch> = None;
        let (mut events, mut first, mut last) = (0, 0, 0);
        loop {
            let mut want = (limits.max_events - events).min(READ_CHUNK);
            // Past the first chunk, as many records as are likely to fit in the bytes left.
            if let Some(b) = batch.as_ref().filter(|_| events > 0) {
                let per_record = (S::bytes(b) / events).max(1);
                let room = limits.max_bytes.saturating_sub(S::bytes(b));
                want = want.min(room / per_record + 1);
            }
            let records = self
                .reader
                .read(want)
                .await
                .with_context(|| format!("the {} sink cannot read the journal", S::NAME))?;
            if let (Some(oldest), Some(newest)) = (records.first(), records.last()) {
                let b = batch.get_or_insert_with(|| {
                    first = oldest.record.no;
                    self.reader
                        .position()
                        .batch_started(first, oldest.record.received);
                    self.sink.batch(oldest)
                });
                self.sink.add(b, &records).await;
                events += records.len();
                last = newest.record.no;
            }
            let full = batch.as_ref().is_some_and(|b| {
                events >= limits.max_events || S::bytes(b) >= limits.max_bytes || S::urgent(b)
            });
            if full || Instant::now() >= deadline || self.shutdown.is_cancelled() {
                break;
            }
            if !self.reader.has_more() {
                let tick = deadline.min(Instant::now() + GATHER_TICK);
                tokio::select! {
                    () = tokio::time::sleep_until(tick) => {}
                    () = self.shutdown.cancelled() => {}
                }
            }
        }
        Ok(batch.map(|b| (self.sink.finish(b), first..=last)))
    }
}

/// Writes one batch, quarantines what the store refuses for good, then stores the cursor past
/// it: the one retry loop of every sink. Retriable failures wait a jittered, growing delay
/// (after the sink's own recovery, such as creating a missing bucket) and try again, for as long
/// as it takes: the journal holds the data meanwhile. A store that refuses devicehub itself is
/// retried the same way, and reported to `/readyz` until a write succeeds.
async fn write_through<S: Sink>(
    (writer, cursor): (S::Writer, S::Cursor),
    oversight: Oversight,
    position: Arc<SinkPosition>,
    mut payload: S::Payload,
    span: RangeInclusive<u64>,
) {
    let last = *span.end();
    let mut backoff = Backoff::new();
    let mut refused: Vec<Refusal> = Vec::new();
    let mut written = false;
    loop {
        if !written {
            match writer.write(&mut payload, span.clone(), &mut refused).await {
                Ok(()) => {
                    written = true;
                    oversight.misconfigured(S::NAME, None);
                }
                Err(e) if e.kind == ErrorKind::Refused => {
                    refused.retain(|r| !span.contains(&r.journal_no));
                    refused.extend(span.clone().map(|journal_no| Refusal {
                        journal_no,
                        reason: e.message.clone(),
                    }));
                    written = true;
                }
                Err(e) => {
                    if e.kind == ErrorKind::Misconfigured {
                        oversight.misconfigured(S::NAME, Some(&e.message));
                    }
                    tracing::warn!(sink = S::NAME, error = %e, "write failed; retrying");
                    writer.recover(&e).await;
                    backoff.wait().await;
                    continue;
                }
            }
        }
        if !refused.is_empty() {
            if let Err(e) = oversight.quarantine.keep(S::NAME, &refused).await {
                tracing::error!(sink = S::NAME, error = %e, "cannot quarantine; retrying");
                backoff.wait().await;
                continue;
            }
            refused.clear();
        }
        match cursor.store(last).await {
            Ok(()) => break,
            Err(e) => {
                tracing::error!(sink = S::NAME, error = %e, "cannot store the cursor; retrying");
                backoff.wait().await;
            }
        }
    }
    position.mark_written(last);
}

#[cfg(test)]
#[path = "driver_tests.rs"]
mod tests;
