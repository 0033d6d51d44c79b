//! The collector's on-disk journal: every message the collector accepts is appended here before
//! the broker gets its QoS 1 acknowledgement, and each sink reads it at its own pace with its own
//! cursor. A sink that is down or slow therefore lags on disk instead of losing data, and a
//! restart resumes every sink where it stopped.
//!
//! Layout: segment files `{first record number:020}.seg` in one directory, each a sequence of
//! records `[body length u32][crc32 u32][body]`, body = `[number u64][received µs i64]
//! [topic length u16][topic][payload]`, little endian. A torn tail (a crash mid-write) fails its
//! checksum and is cut off on open. Records are numbered from 1 without gaps.
//!
//! Sinks read it through the [`Feed`] (`feed.rs`): from an in-memory cache of what was just
//! journaled, already decoded, or from the files ([`JournalReader`]) when they fall behind.

mod cursor;
mod damage;
mod feed;
mod format;
mod reader;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

pub use cursor::FileCursor;
pub use damage::{Damage, DamageLog};
pub use feed::{Decode, DecodedCache, Feed, FeedReader, Journaled, SinkPosition};
pub use reader::JournalReader;

use format::{scan_segment, write_atomically, HEADER, MAX_BODY};

/// One accepted MQTT message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub no: u64,
    pub received: DateTime<Utc>,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// A message to append (its number is assigned by the journal).
#[derive(Debug, Clone)]
pub struct Entry {
    pub received: DateTime<Utc>,
    pub topic: String,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone)]
struct Segment {
    first: u64,
    path: PathBuf,
    bytes: u64,
}

/// The writing end, owned by the ingest task.
pub struct Journal {
    dir: PathBuf,
    id: String,
    segment_bytes: u64,
    segments: Vec<Segment>,
    writer: BufWriter<File>,
    next_no: u64,
    end: watch::Sender<u64>,
    buf: Vec<u8>,
    /// Set while a failed write is not yet cut back: `(first record, segment length)` before it.
    torn: Option<(u64, u64)>,
    /// Where damage found at open and by readers is reported.
    damage: DamageLog,
    /// Held while the journal is open: one process per journal directory.
    _lock: File,
}

/// The writer's buffer: a batch of records goes to the OS in a few system calls.
const WRITE_BUFFER: usize = 256 * 1024;

/// Where readers learn how far the journal has been written (the last complete record number).
#[derive(Clone)]
pub struct JournalEnd(Arc<watch::Receiver<u64>>);

impl JournalEnd {
    pub fn current(&self) -> u64 {
        *self.0.borrow()
    }

    /// Waits until the journal ends after `after`.
    pub async fn wait_past(&self, after: u64) {
        let mut rx = (*self.0).clone();
        let _ = rx.wait_for(|end| *end > after).await;
    }
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

fn list_segments(dir: &Path) -> io::Result<Vec<Segment>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(first) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        segments.push(Segment {
            first,
            path: entry.path(),
            bytes: entry.metadata()?.len(),
        });
    }
    segments.sort_by_key(|s| s.first);
    Ok(segments)
}

/// Takes the journal's lock file (an advisory lock the OS releases when the process ends, even
/// killed): two processes appending to one journal would corrupt it.
fn lock(dir: &Path) -> io::Result<File> {
    let path = dir.join("journal.lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => {
            file.set_len(0)?;
            writeln!(file, "{}", std::process::id())?;
            Ok(file)
        }
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "the journal in {} is in use by another devicehub process (pid {}); \
                     give each process its own collector.journal_dir",
                    dir.display(),
                    holder.trim()
                ),
            ))
        }
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Checks every record of every segment (see [`format::scan_segment`]): damage in the middle is
/// reported and left for the readers to pass over; the last segment's torn tail (a crash
/// mid-write) is cut off. Returns the number the next record gets.
fn check_segments(segments: &[Segment], damage: &DamageLog) -> io::Result<u64> {
    let mut next_no = 1;
    for (i, segment) in segments.iter().enumerate() {
        let scan = scan_segment(&segment.path, segment.first)?;
        for &(offset, bytes, first_lost, last_lost) in &scan.damaged {
            let lost = (last_lost >= first_lost).then_some(first_lost..=last_lost);
            damage.report(&segment.path, offset, bytes, lost);
        }
        let tail = segment.bytes.saturating_sub(scan.valid_end);
        next_no = scan.last.map_or(segment.first, |n| n + 1);
        match segments.get(i + 1) {
            // A damaged end of an earlier segment: its records up to the next segment are lost.
            Some(following) if tail > 0 || following.first > next_no => {
                let lost = (following.first > next_no).then(|| next_no..=following.first - 1);
                damage.report(&segment.path, scan.valid_end, tail, lost);
            }
            Some(_) => {}
            None if tail > 0 => {
                tracing::warn!(segment = %segment.path.display(), kept = scan.valid_end,
                    found = segment.bytes, "journal: cutting off a torn tail");
                OpenOptions::new()
                    .write(true)
                    .open(&segment.path)?
                    .set_len(scan.valid_end)?;
            }
            None => {}
        }
    }
    Ok(next_no)
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, checking its segments and cutting off a torn
    /// tail.
    /// Fails when another process has the journal open.
    pub fn open(dir: &Path, segment_bytes: u64) -> io::Result<(Self, JournalEnd)> {
        fs::create_dir_all(dir)?;
        let lock = lock(dir)?;
        let id_path = dir.join("journal.id");
        let id = match fs::read_to_string(&id_path) {
            Ok(id) => id.trim().to_owned(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                write_atomically(&id_path, id.as_bytes())?;
                id
            }
            Err(e) => return Err(e),
        };
        let damage = DamageLog::new(dir);
        let mut segments = list_segments(dir)?;
        let next_no = check_segments(&segments, &damage)?;
        if let Some(last) = segments.last_mut() {
            last.bytes = fs::metadata(&last.path)?.len();
        }
        if segments.is_empty() {
            segments.push(Segment {
                first: 1,
                path: segment_path(dir, 1),
                bytes: 0,
            });
        }
        #[allow(
            clippy::expect_used,
            reason = "an empty directory got its first segment above"
        )]
        let current = segments.last().expect("at least one segment");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current.path)?;
        let (end, rx) = watch::channel(next_no - 1);
        Ok((
            Self {
                dir: dir.to_owned(),
                id,
                segment_bytes,
                segments,
                writer: BufWriter::with_capacity(WRITE_BUFFER, file),
                next_no,
                end,
                buf: Vec::new(),
                torn: None,
                damage,
                _lock: lock,
            },
            JournalEnd(Arc::new(rx)),
        ))
    }

    /// Where damage in the journal's files is reported (at open, and by readers given it).
    pub fn damage(&self) -> &DamageLog {
        &self.damage
    }

    /// A random id fixed when the journal was created; cursors kept elsewhere (PostgreSQL) are
    /// keyed by it, so a wiped journal never inherits old positions.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The number of the oldest record still on disk.
    pub fn first_no(&self) -> u64 {
        self.segments.first().map_or(self.next_no, |s| s.first)
    }

    /// The number of the last record written.
    pub fn last_no(&self) -> u64 {
        self.next_no - 1
    }

    /// Bytes on disk in all segments.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// [`Journal::append_then`] with nothing to do before readers learn of the entries.
    #[cfg(test)]
    pub fn append(&mut self, entries: &[Entry]) -> io::Result<std::ops::RangeInclusive<u64>> {
        self.append_then(&mut entries.to_vec(), |_, _| {})
    }

    /// Appends the entries and hands them to the operating system (they survive a crash of the
    /// process; `sync` makes them survive a crash of the machine). Returns their numbers. The
    /// written entries and their numbers go to `before_readers` before readers learn of them
    /// (the collector moves them into its decoded cache there, so a sink never reads from disk
    /// what the cache is about to hold). On error `entries` are left as they were.
    pub fn append_then(
        &mut self,
        entries: &mut Vec<Entry>,
        before_readers: impl FnOnce(std::ops::RangeInclusive<u64>, &mut Vec<Entry>),
    ) -> io::Result<std::ops::RangeInclusive<u64>> {
        let numbers = self.write(entries)?;
        before_readers(numbers.clone(), entries);
        self.publish_end();
        Ok(numbers)
    }

    fn publish_end(&self) {
        self.end.send_replace(self.next_no - 1);
    }

    /// Writes the entries and hands them to the operating system. When a write fails (a full
    /// disk, an I/O error), the segment is cut back to its last whole record before the error
    /// returns, so that no torn or half-written batch is left for readers, or for the next start
    /// to cut records the broker already had acknowledged.
    fn write(&mut self, entries: &[Entry]) -> io::Result<std::ops::RangeInclusive<u64>> {
        if let Some((first, bytes)) = self.torn {
            self.cut_back(first, bytes)?;
        }
        let first = self.next_no;
        let bytes = self.segments.last().map_or(0, |s| s.bytes);
        if let Err(e) = self.write_records(entries) {
            // Until the cut succeeds, nothing else is written.
            self.torn = Some((first, bytes));
            self.cut_back(first, bytes)?;
            return Err(e);
        }
        if self
            .segments
            .last()
            .is_some_and(|s| s.bytes >= self.segment_bytes)
        {
            // The records are written: a segment that cannot roll now grows until it can.
            if let Err(e) = self.roll() {
                tracing::warn!(error = %e, "journal: cannot start a new segment yet");
            }
        }
        Ok(first..=self.next_no - 1)
    }

    fn write_records(&mut self, entries: &[Entry]) -> io::Result<()> {
        for entry in entries {
            self.buf.clear();
            self.buf.extend_from_slice(&self.next_no.to_le_bytes());
            self.buf
                .extend_from_slice(&entry.received.timestamp_micros().to_le_bytes());
            let topic = entry.topic.as_bytes();
            let topic_len =
                u16::try_from(topic.len()).map_err(|_| io::Error::other("topic too long"))?;
            self.buf.extend_from_slice(&topic_len.to_le_bytes());
            self.buf.extend_from_slice(topic);
            self.buf.extend_from_slice(&entry.payload);
            if self.buf.len() > MAX_BODY {
                return Err(io::Error::other("journal record too large"));
            }
            let crc = crc32fast::hash(&self.buf);
            self.writer
                .write_all(&(self.buf.len() as u32).to_le_bytes())?;
            self.writer.write_all(&crc.to_le_bytes())?;
            self.writer.write_all(&self.buf)?;
            if let Some(segment) = self.segments.last_mut() {
                segment.bytes += (HEADER + self.buf.len()) as u64;
            }
            self.next_no += 1;
        }
        self.writer.flush()
    }

    /// Forgets what was written after record `first - 1`, at `bytes` into the current segment:
    /// the writer's buffer is dropped unwritten and the file cut to its length before.
    fn cut_back(&mut self, first: u64, bytes: u64) -> io::Result<()> {
        let path = self
            .segments
            .last()
            .map(|s| s.path.clone())
            .ok_or_else(|| io::Error::other("the journal has no segment"))?;
        let fresh = OpenOptions::new().append(true).open(&path)?;
        let old = std::mem::replace(
            &mut self.writer,
            BufWriter::with_capacity(WRITE_BUFFER, fresh),
        );
        let (file, _unwritten) = old.into_parts();
        file.set_len(bytes)?;
        if let Some(segment) = self.segments.last_mut() {
            segment.bytes = bytes;
        }
        self.next_no = first;
        self.torn = None;
        Ok(())
    }

    fn roll(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().sync_data()?;
        let path = segment_path(&self.dir, self.next_no);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        self.writer = BufWriter::with_capacity(WRITE_BUFFER, file);
        self.segments.push(Segment {
            first: self.next_no,
            path,
            bytes: 0,
        });
        Ok(())
    }

    /// A handle to flush to disk (`File::sync_data`) from a blocking thread.
    pub fn sync_handle(&self) -> io::Result<File> {
        self.writer.get_ref().try_clone()
    }

    /// Deletes whole segments in which every record is at most `done`.
    pub fn remove_through(&mut self, done: u64) -> io::Result<()> {
        while self.segments.len() > 1 && self.segments[1].first <= done + 1 {
            let segment = self.segments.remove(0);
            fs::remove_file(&segment.path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
