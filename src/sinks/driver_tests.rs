//! The driver with a sink of the tests' own over a real journal, under the real supervisor.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use chrono::Utc;

use super::*;
use crate::domain::Message;
use crate::journal::{Decode, Entry, FileCursor, Journal, Journaled, Record};
use crate::metrics::Metrics;
use crate::sinks::quarantine::Quarantine;
use crate::sinks::{Refusal, SinkError};

/// Writes journal numbers into a list; can be told to panic or fail on its next writes.
#[derive(Clone)]
struct Recording {
    written: Arc<Mutex<Vec<u64>>>,
    panics: Arc<AtomicUsize>,
    retriable_failures: Arc<AtomicUsize>,
    /// The store refuses this record for good (the sink tells which).
    poison: Option<u64>,
    /// The store refuses a batch with this record whole (the sink cannot tell which).
    poison_batch: Option<u64>,
    cursor: FileCursor,
}

impl Sink for Recording {
    const NAME: &'static str = "recording";
    type Batch = Vec<u64>;
    type Payload = Vec<u64>;
    type Writer = Recording;
    type Cursor = FileCursor;

    fn batch(&self, _first: &Journaled) -> Vec<u64> {
        Vec::new()
    }

    async fn add(&mut self, batch: &mut Vec<u64>, records: &[Arc<Journaled>]) {
        batch.extend(records.iter().map(|j| j.record.no));
    }

    fn bytes(batch: &Vec<u64>) -> usize {
        batch.len() * 8
    }

    fn finish(&mut self, batch: Vec<u64>) -> Vec<u64> {
        batch
    }

    fn writer(&self) -> Recording {
        self.clone()
    }

    fn cursor(&self) -> FileCursor {
        self.cursor.clone()
    }
}

fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Write<Vec<u64>> for Recording {
    async fn write(
        &self,
        batch: &mut Vec<u64>,
        _span: RangeInclusive<u64>,
        refused: &mut Vec<Refusal>,
    ) -> Result<(), SinkError> {
        if take_one(&self.panics) {
            panic!("the store's client blew up");
        }
        if take_one(&self.retriable_failures) {
            return Err(SinkError::retriable("the store is restarting"));
        }
        if self.poison_batch.is_some_and(|p| batch.contains(&p)) {
            return Err(SinkError::refused("the store refuses this batch"));
        }
        if let Some(p) = self.poison.filter(|p| batch.contains(p)) {
            batch.retain(|n| *n != p);
            refused.push(Refusal {
                journal_no: p,
                reason: "the store refuses this record".into(),
            });
        }
        self.written.lock().unwrap().extend(batch.iter());
        Ok(())
    }
}

/// The quarantine as the driver sees it: what it was handed, by sink.
#[derive(Default)]
struct Kept(Mutex<Vec<(&'static str, u64, String)>>);

#[async_trait::async_trait]
impl Quarantine for Kept {
    async fn keep(&self, sink: &'static str, refused: &[Refusal]) -> Result<(), SinkError> {
        let mut kept = self.0.lock().unwrap();
        kept.extend(
            refused
                .iter()
                .map(|r| (sink, r.journal_no, r.reason.clone())),
        );
        Ok(())
    }
}

struct Undecoded;

impl Decode for Undecoded {
    fn decode_record(&self, _record: &Record) -> Message {
        Message::Ignored
    }
}

struct Setup {
    dir: std::path::PathBuf,
    journal: Journal,
    feed: Feed,
    sink: Recording,
    kept: Arc<Kept>,
    oversight: Oversight,
}

fn setup(records: usize) -> Setup {
    let dir = std::env::temp_dir().join(format!(
        "devicehub-driver-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let (mut journal, end) = Journal::open(&dir, 4096).unwrap();
    let entries: Vec<Entry> = (0..records)
        .map(|i| Entry {
            received: Utc::now(),
            topic: format!("iot/d{i}/telemetry"),
            payload: b"{}".to_vec(),
        })
        .collect();
    journal.append(&entries).unwrap();
    let feed = Feed::new(
        (dir.clone(), journal.damage().clone()),
        end,
        Arc::new(Undecoded),
        (1000, 1 << 26),
    );
    let sink = Recording {
        written: Default::default(),
        panics: Default::default(),
        retriable_failures: Default::default(),
        poison: None,
        poison_batch: None,
        cursor: FileCursor::new(&journal, "recording"),
    };
    let kept = Arc::new(Kept::default());
    let oversight = Oversight {
        quarantine: kept.clone(),
        metrics: Default::default(),
        health: Default::default(),
    };
    Setup {
        dir,
        journal,
        feed,
        sink,
        kept,
        oversight,
    }
}

fn batches(max_events: usize, timeout_ms: u64) -> BatchSettings {
    BatchSettings {
        max_events,
        max_bytes: usize::MAX,
        timeout_ms,
    }
}

/// Runs the supervisor until `done` holds, then stops it; returns the metrics.
async fn run_until(
    supervisor: Supervisor,
    done: impl Fn() -> bool,
) -> Result<(), crate::supervisor::Fatal> {
    let stop = async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "the sink did not get there in time"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    supervisor.run_until(stop, Duration::from_secs(5)).await
}

#[tokio::test]
async fn a_sink_whose_write_panics_is_restarted_from_its_cursor_and_writes_every_record_once() {
    let s = setup(100);
    s.sink.panics.store(1, Ordering::SeqCst);
    let metrics = Metrics::new();
    let mut supervisor = Supervisor::new(metrics.tasks.clone());
    spawn(
        &mut supervisor,
        (&s.feed, &s.oversight),
        batches(10, 50),
        s.sink.clone(),
    )
    .await
    .unwrap();
    let written = s.sink.written.clone();
    run_until(supervisor, || written.lock().unwrap().len() >= 100)
        .await
        .unwrap();
    assert_eq!(
        *s.sink.written.lock().unwrap(),
        (1..=100).collect::<Vec<u64>>()
    );
    assert_eq!(
        s.sink.cursor.load().unwrap(),
        100,
        "the cursor is past every record"
    );
    assert_eq!(s.feed.written_by_all(), 100);
    let text = metrics.encode().unwrap();
    assert!(
        text.contains("devicehub_task_restarts_total{task=\"recording sink\"} 1"),
        "{text}"
    );
    drop(s.journal);
    std::fs::remove_dir_all(s.dir).unwrap();
}

#[tokio::test]
async fn retriable_failures_are_retried_and_what_the_store_refuses_is_quarantined() {
    let mut s = setup(30);
    s.sink.retriable_failures.store(2, Ordering::SeqCst);
    s.sink.poison = Some(4);
    s.sink.poison_batch = Some(15);
    let mut supervisor = Supervisor::new(Default::default());
    spawn(
        &mut supervisor,
        (&s.feed, &s.oversight),
        batches(10, 50),
        s.sink.clone(),
    )
    .await
    .unwrap();
    let feed = s.feed.clone();
    run_until(supervisor, || feed.written_by_all() >= 30)
        .await
        .unwrap();
    let expected: Vec<u64> = (1..=3).chain(5..=10).chain(21..=30).collect();
    assert_eq!(*s.sink.written.lock().unwrap(), expected, "nothing twice");
    assert_eq!(
        s.sink.cursor.load().unwrap(),
        30,
        "the cursor passed what was refused"
    );
    let kept = s.kept.0.lock().unwrap().clone();
    let numbers: Vec<u64> = kept.iter().map(|(_, no, _)| *no).collect();
    assert_eq!(
        numbers,
        [4].into_iter().chain(11..=20).collect::<Vec<u64>>()
    );
    assert!(kept.iter().all(|(sink, _, _)| *sink == "recording"));
    assert_eq!(kept[0].2, "the store refuses this record");
    assert_eq!(kept[1].2, "the store refuses this batch");
    drop(s.journal);
    std::fs::remove_dir_all(s.dir).unwrap();
}

#[tokio::test]
async fn at_shutdown_the_batch_being_gathered_is_written_at_once() {
    let s = setup(5);
    let mut supervisor = Supervisor::new(Default::default());
    // A batch that would wait a minute for more records.
    spawn(
        &mut supervisor,
        (&s.feed, &s.oversight),
        batches(1000, 60_000),
        s.sink.clone(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    supervisor
        .run_until(
            tokio::time::sleep(Duration::from_millis(200)),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(*s.sink.written.lock().unwrap(), [1, 2, 3, 4, 5]);
    assert_eq!(s.sink.cursor.load().unwrap(), 5);
    drop(s.journal);
    std::fs::remove_dir_all(s.dir).unwrap();
}

#[tokio::test]
async fn a_restarted_sink_starts_after_its_stored_cursor() {
    let s = setup(20);
    s.sink.cursor.store(12).unwrap();
    let mut supervisor = Supervisor::new(Default::default());
    spawn(
        &mut supervisor,
        (&s.feed, &s.oversight),
        batches(100, 20),
        s.sink.clone(),
    )
    .await
    .unwrap();
    let written = s.sink.written.clone();
    run_until(supervisor, || written.lock().unwrap().len() >= 8)
        .await
        .unwrap();
    assert_eq!(
        *s.sink.written.lock().unwrap(),
        (13..=20).collect::<Vec<u64>>()
    );
    drop(s.journal);
    std::fs::remove_dir_all(s.dir).unwrap();
}
