//! The collector's on-disk journal: every message the collector accepts is appended here before
//! the broker gets its QoS 1 acknowledgement, and each sink reads it at its own pace with its own
//! cursor. A sink that is down or slow therefore lags on disk instead of losing data, and a
//! restart resumes every sink where it stopped.
//!
//! Layout: segment files `{first record number:020}.seg` in one directory, each a sequence of
//! records `[body length u32][crc32 u32][body]`, body = `[number u64][received µs i64]
//! [topic length u16][topic][payload]`, little endian. A torn tail (a crash mid-write) fails its
//! checksum and is cut off on open. Records are numbered from 1 without gaps.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

const HEADER: usize = 8;
const MAX_BODY: usize = 64 * 1024 * 1024;

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
}

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

impl Journal {
    /// Opens (or creates) the journal in `dir`, cutting off a torn tail.
    pub fn open(dir: &Path, segment_bytes: u64) -> io::Result<(Self, JournalEnd)> {
        fs::create_dir_all(dir)?;
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
        let mut segments = list_segments(dir)?;
        let mut next_no = 1;
        if let Some(last) = segments.last_mut() {
            let (valid_len, last_no) = scan_valid(&last.path, last.first)?;
            if valid_len < last.bytes {
                tracing::warn!(segment = %last.path.display(), kept = valid_len, found = last.bytes,
                    "journal: cutting off a torn tail");
                OpenOptions::new()
                    .write(true)
                    .open(&last.path)?
                    .set_len(valid_len)?;
                last.bytes = valid_len;
            }
            next_no = last_no.map_or(last.first, |n| n + 1);
        }
        if segments.is_empty() {
            segments.push(Segment {
                first: 1,
                path: segment_path(dir, 1),
                bytes: 0,
            });
        }
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
                writer: BufWriter::with_capacity(256 * 1024, file),
                next_no,
                end,
                buf: Vec::new(),
            },
            JournalEnd(Arc::new(rx)),
        ))
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

    fn write(&mut self, entries: &[Entry]) -> io::Result<std::ops::RangeInclusive<u64>> {
        let first = self.next_no;
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
            let segment = self.segments.last_mut().expect("current segment");
            segment.bytes += (HEADER + self.buf.len()) as u64;
            self.next_no += 1;
        }
        self.writer.flush()?;
        let last = self.next_no - 1;
        if self
            .segments
            .last()
            .is_some_and(|s| s.bytes >= self.segment_bytes)
        {
            self.roll()?;
        }
        Ok(first..=last)
    }

    fn roll(&mut self) -> io::Result<()> {
        self.writer.flush()?;
        self.writer.get_ref().sync_data()?;
        let path = segment_path(&self.dir, self.next_no);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        self.writer = BufWriter::with_capacity(256 * 1024, file);
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

/// Returns the length of the valid prefix of a segment and its last record number.
fn scan_valid(path: &Path, first: u64) -> io::Result<(u64, Option<u64>)> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut offset = 0u64;
    let mut last = None;
    let mut expected = first;
    loop {
        match read_record_from(&mut reader, 0)? {
            Next::Record(record) if record.no == expected => {
                offset += (HEADER + body_len(&record)) as u64;
                last = Some(record.no);
                expected += 1;
            }
            _ => return Ok((offset, last)),
        }
    }
}

fn body_len(record: &Record) -> usize {
    8 + 8 + 2 + record.topic.len() + record.payload.len()
}

/// A record from its body, `None` when the checksum or the layout is wrong.
fn parse_body(body: Vec<u8>, crc: u32) -> Option<Record> {
    let len = body.len();
    if crc32fast::hash(&body) != crc {
        return None;
    }
    let no = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
    let micros = i64::from_le_bytes(body[8..16].try_into().expect("8 bytes"));
    let topic_len = u16::from_le_bytes(body[16..18].try_into().expect("2 bytes")) as usize;
    if 18 + topic_len > len {
        return None;
    }
    let topic = std::str::from_utf8(&body[18..18 + topic_len])
        .ok()?
        .to_owned();
    let mut payload = body;
    payload.drain(..18 + topic_len);
    Some(Record {
        no,
        received: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
        topic,
        payload,
    })
}

enum Next {
    Record(Record),
    /// A complete record numbered below the one wanted, passed over: its number and size on
    /// disk.
    Skipped(u64, u64),
    /// The end of the complete records, or a torn/corrupt one.
    End,
}

/// Reads the next record at or after number `from`. Records below it are passed over by their
/// headers (they are complete: the reader only moves past records the journal has written).
fn read_record_from(reader: &mut BufReader<File>, from: u64) -> io::Result<Next> {
    let mut head = [0u8; HEADER + 8];
    match reader.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Next::End),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(head[4..HEADER].try_into().expect("4 bytes"));
    let no = u64::from_le_bytes(head[HEADER..].try_into().expect("8 bytes"));
    if !(18..=MAX_BODY).contains(&len) {
        return Ok(Next::End);
    }
    if no < from {
        reader.seek_relative((len - 8) as i64)?;
        return Ok(Next::Skipped(no, (HEADER + len) as u64));
    }
    let mut body = vec![0u8; len];
    body[..8].copy_from_slice(&head[HEADER..]);
    match reader.read_exact(&mut body[8..]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Next::End),
        Err(e) => return Err(e),
    }
    Ok(parse_body(body, crc).map_or(Next::End, Next::Record))
}

/// A sink's reading end: yields records in order from a position, across segments. It keeps
/// its segment open between calls and resumes at the byte after the last complete record.
pub struct JournalReader {
    dir: PathBuf,
    next: u64,
    open: Option<OpenSegment>,
}

struct OpenSegment {
    first: u64,
    reader: BufReader<File>,
    /// Where the next record starts.
    offset: u64,
    /// The number of the last record read or passed over (`first - 1` before any).
    passed: u64,
}

impl JournalReader {
    /// A reader whose first record will be `after + 1`.
    pub fn new(dir: &Path, after: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            next: after + 1,
            open: None,
        }
    }

    /// The number of the next record to read.
    pub fn next_no(&self) -> u64 {
        self.next
    }

    /// Moves past records the caller got elsewhere (the collector's decoded cache): the next
    /// read starts at `after + 1`. Only forward, and only over records already written; the
    /// skipped records are then passed over by their headers, without reading their bodies.
    pub fn skip_to(&mut self, after: u64) {
        self.next = self.next.max(after + 1);
    }

    /// [`JournalReader::read`] on a blocking thread, for async callers. Should the blocking
    /// task itself fail, the reader starts over at the same position and the error is returned.
    pub async fn read_blocking(self, end: u64, max: usize) -> (Self, io::Result<Vec<Record>>) {
        let (dir, after) = (self.dir.clone(), self.next - 1);
        let mut reader = self;
        tokio::task::spawn_blocking(move || {
            let records = reader.read(end, max);
            (reader, records)
        })
        .await
        .unwrap_or_else(|e| (JournalReader::new(&dir, after), Err(io::Error::other(e))))
    }

    /// Reads up to `max` records, none past `end` (blocking file I/O on the page cache).
    pub fn read(&mut self, end: u64, max: usize) -> io::Result<Vec<Record>> {
        let mut out = Vec::new();
        while self.next <= end && out.len() < max {
            if self.open.is_none() {
                self.seek_to_next()?;
            }
            let Some(segment) = self.open.as_mut() else {
                break;
            };
            match read_record_from(&mut segment.reader, self.next)? {
                Next::Skipped(no, bytes) => {
                    segment.offset += bytes;
                    segment.passed = no;
                }
                Next::Record(record) if record.no == self.next => {
                    segment.offset += (HEADER + body_len(&record)) as u64;
                    segment.passed = record.no;
                    self.next += 1;
                    out.push(record);
                }
                // The end of this segment's complete records: the next segment, if written,
                // starts right after them.
                _ => {
                    let next_segment = segment_path(&self.dir, segment.passed + 1);
                    if segment.first != segment.passed + 1 && next_segment.exists() {
                        let reader =
                            BufReader::with_capacity(256 * 1024, File::open(next_segment)?);
                        self.open = Some(OpenSegment {
                            first: segment.passed + 1,
                            reader,
                            offset: 0,
                            passed: segment.passed,
                        });
                    } else {
                        // Nothing more yet: come back to the same byte next time.
                        segment.reader.seek(SeekFrom::Start(segment.offset))?;
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    fn seek_to_next(&mut self) -> io::Result<()> {
        let segments = list_segments(&self.dir)?;
        let Some(segment) = segments.iter().rev().find(|s| s.first <= self.next) else {
            return Err(io::Error::other(format!(
                "journal record {} is gone (segments were removed before this reader finished)",
                self.next
            )));
        };
        let reader = BufReader::with_capacity(256 * 1024, File::open(&segment.path)?);
        self.open = Some(OpenSegment {
            first: segment.first,
            reader,
            offset: 0,
            passed: segment.first.saturating_sub(1),
        });
        Ok(())
    }
}

/// A sink position kept in a small file next to the journal.
#[derive(Clone)]
pub struct FileCursor {
    path: PathBuf,
}

impl FileCursor {
    pub fn new(journal: &Journal, name: &str) -> Self {
        Self {
            path: journal.dir().join(format!("{name}.cursor")),
        }
    }

    pub fn load(&self) -> io::Result<u64> {
        match fs::read_to_string(&self.path) {
            Ok(s) => s.trim().parse().map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    pub fn store(&self, done: u64) -> io::Result<()> {
        write_atomically(&self.path, done.to_string().as_bytes())
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> Entry {
        Entry {
            received: Utc::now(),
            topic: format!("iot/d{i}/telemetry"),
            payload: format!("{{\"n\":{i}}}").into_bytes(),
        }
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "devicehub-journal-{}",
            uuid::Uuid::new_v4().simple()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn records_come_back_in_order_across_segments_and_reopen() {
        let dir = temp_dir();
        let (mut journal, end) = Journal::open(&dir, 200).unwrap();
        let entries: Vec<Entry> = (0..50).map(entry).collect();
        for chunk in entries.chunks(7) {
            journal.append(chunk).unwrap();
        }
        assert_eq!(end.current(), 50);
        assert!(
            list_segments(&dir).unwrap().len() > 3,
            "small segments roll"
        );
        let mut reader = JournalReader::new(&dir, 10);
        let got = reader.read(50, 1000).unwrap();
        assert_eq!(got.first().unwrap().no, 11);
        assert_eq!(got.len(), 40);
        assert_eq!(got[5].payload, b"{\"n\":15}");
        drop(journal);
        let (mut journal, end) = Journal::open(&dir, 200).unwrap();
        assert_eq!(end.current(), 50);
        assert_eq!(*journal.append(&[entry(50)]).unwrap().start(), 51);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reading_past_the_end_returns_what_there_is() {
        let dir = temp_dir();
        let (mut journal, _) = Journal::open(&dir, 1 << 20).unwrap();
        assert!(
            JournalReader::new(&dir, 0)
                .read(u64::MAX, 10)
                .unwrap()
                .is_empty(),
            "empty journal"
        );
        journal.append(&[entry(0), entry(1)]).unwrap();
        let mut reader = JournalReader::new(&dir, 0);
        assert_eq!(reader.read(u64::MAX, 10).unwrap().len(), 2);
        assert!(reader.read(u64::MAX, 10).unwrap().is_empty());
        journal.append(&[entry(2)]).unwrap();
        assert_eq!(
            reader.read(u64::MAX, 10).unwrap()[0].no,
            3,
            "picks up new records"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_reader_skips_records_got_elsewhere_and_resumes_after_them() {
        let dir = temp_dir();
        let (mut journal, end) = Journal::open(&dir, 300).unwrap();
        let mut seen = None;
        journal
            .append_then(&mut (0..30).map(entry).collect(), |numbers, entries| {
                seen = Some((numbers, entries.len(), end.current()))
            })
            .unwrap();
        assert_eq!(
            seen,
            Some((1..=30, 30, 0)),
            "readers learn of records after the callback"
        );
        assert_eq!(end.current(), 30);
        let mut reader = JournalReader::new(&dir, 0);
        assert_eq!(reader.read(30, 3).unwrap().last().unwrap().no, 3);
        reader.skip_to(17);
        reader.skip_to(5);
        let got = reader.read(30, 4).unwrap();
        assert_eq!(
            got.iter().map(|r| r.no).collect::<Vec<_>>(),
            [18, 19, 20, 21],
            "skipped over several segments; never backwards"
        );
        assert_eq!(got[0].payload, b"{\"n\":17}");
        assert_eq!(got[0].topic, "iot/d17/telemetry");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn torn_tail_is_cut_off_on_open() {
        let dir = temp_dir();
        let (mut journal, _) = Journal::open(&dir, 1 << 20).unwrap();
        journal
            .append(&(0..3).map(entry).collect::<Vec<_>>())
            .unwrap();
        drop(journal);
        let seg = segment_path(&dir, 1);
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[40, 0, 0, 0, 1, 2, 3, 4, 9, 9]).unwrap();
        let (journal, end) = Journal::open(&dir, 1 << 20).unwrap();
        assert_eq!((end.current(), journal.last_no()), (3, 3));
        assert_eq!(JournalReader::new(&dir, 0).read(3, 10).unwrap().len(), 3);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn consumed_segments_are_removed_and_cursors_persist() {
        let dir = temp_dir();
        let (mut journal, _) = Journal::open(&dir, 100).unwrap();
        for i in 0..20 {
            journal.append(&[entry(i)]).unwrap();
        }
        let before = list_segments(&dir).unwrap().len();
        journal.remove_through(15).unwrap();
        let after = list_segments(&dir).unwrap();
        assert!(after.len() < before);
        assert!(after[0].first <= 16);
        assert_eq!(JournalReader::new(&dir, 15).read(20, 100).unwrap().len(), 5);
        let cursor = FileCursor::new(&journal, "influxdb");
        assert_eq!(cursor.load().unwrap(), 0);
        cursor.store(17).unwrap();
        assert_eq!(cursor.load().unwrap(), 17);
        fs::remove_dir_all(dir).unwrap();
    }
}
