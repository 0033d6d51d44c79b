//! A sink's reading end of the journal's files.

use std::fs::File;
use std::io::{self, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::damage::DamageLog;
use super::format::{body_len, read_record_from, read_tolerant, record_at, resync, Next, HEADER};
use super::{list_segments, segment_path, Record};

/// A sink's reading end: yields records in order from a position, across segments. It keeps
/// its segment open between calls and resumes at the byte after the last complete record.
///
/// Damage is told from a record still being written by the journal's end: every record up to
/// `end` is complete on disk (the journal publishes its end only after writing), so bytes that
/// are not the record wanted at or before `end` are damage. The reader then finds the next valid
/// record after them (or the next segment), reports what it passed over to the [`DamageLog`],
/// and goes on: one bad record never stops a sink.
pub struct JournalReader {
    dir: PathBuf,
    next: u64,
    open: Option<OpenSegment>,
    damage: DamageLog,
}

struct OpenSegment {
    first: u64,
    path: PathBuf,
    reader: BufReader<File>,
    /// Where the next record starts.
    offset: u64,
    /// Where the last record read whole (checksum checked) ends: a damaged range starts after it.
    checked: u64,
    /// The number of the last record read or passed over (`first - 1` before any).
    passed: u64,
}

impl JournalReader {
    /// A reader whose first record will be `after + 1`, reporting damage to a log of its own.
    pub fn new(dir: &Path, after: u64) -> Self {
        Self::reporting(dir, after, DamageLog::new(dir))
    }

    /// A reader whose first record will be `after + 1`, reporting damage to `damage`.
    pub fn reporting(dir: &Path, after: u64, damage: DamageLog) -> Self {
        Self {
            dir: dir.to_owned(),
            next: after + 1,
            open: None,
            damage,
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
        let (dir, after, damage) = (self.dir.clone(), self.next - 1, self.damage.clone());
        let mut reader = self;
        tokio::task::spawn_blocking(move || {
            let records = reader.read(end, max);
            (reader, records)
        })
        .await
        .unwrap_or_else(|e| {
            (
                JournalReader::reporting(&dir, after, damage),
                Err(io::Error::other(e)),
            )
        })
    }

    /// Reads up to `max` records, none past `end`, the journal's published end (blocking file
    /// I/O on the page cache).
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
                    segment.checked = segment.offset;
                    segment.passed = record.no;
                    self.next += 1;
                    out.push(record);
                }
                // The end of this segment's records: the next segment, if written, starts right
                // after them.
                Next::End
                    if segment.first != segment.passed + 1
                        && segment_path(&self.dir, segment.passed + 1).exists() =>
                {
                    let next_segment = segment_path(&self.dir, segment.passed + 1);
                    let reader = BufReader::with_capacity(256 * 1024, File::open(&next_segment)?);
                    self.open = Some(OpenSegment {
                        first: segment.passed + 1,
                        path: next_segment,
                        reader,
                        offset: 0,
                        checked: 0,
                        passed: segment.passed,
                    });
                }
                // The records wanted are written (`next <= end`), and these bytes are not them
                // (or the segment ends short of them).
                _ => {
                    if !self.pass_damage(end)? {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Finds the first record numbered `next..=end` after the last record read whole, passing
    /// over what cannot be read; reports what was passed over. Returns whether reading can go
    /// on (false: nothing readable is written yet after the damage; the reader waits there).
    fn pass_damage(&mut self, end: u64) -> io::Result<bool> {
        let Some(segment) = self.open.as_mut() else {
            return Ok(false);
        };
        let bytes = read_tolerant(&segment.path, segment.checked)?;
        // Records the reader passed over by their headers are skipped again, checked this time:
        // the damage starts at the first that is not whole.
        let mut at = 0;
        while let Some((no, len)) = record_at(&bytes, at).filter(|(no, _)| *no < self.next) {
            at += len;
            segment.passed = segment.passed.max(no);
        }
        let damage_at = segment.checked + at as u64;
        let later = list_segments(&self.dir)?
            .into_iter()
            .find(|s| s.first > segment.first);
        let (resume, lost_to, damaged) = match resync(&bytes, at, self.next, end) {
            Some((found, no)) => (Some(segment.checked + found as u64), no, found - at),
            None => match later {
                // Records from here on are in the next segment.
                Some(s) if s.first <= self.next => (None, self.next, bytes.len() - at),
                Some(s) => (None, s.first.min(end.saturating_add(1)), bytes.len() - at),
                // The segment being written: everything published is damaged; what comes next
                // is looked for at the same place.
                None => (Some(damage_at), end.saturating_add(1), bytes.len() - at),
            },
        };
        let lost = (lost_to > self.next).then(|| self.next..=lost_to - 1);
        if damaged > 0 || lost.is_some() {
            self.damage
                .report(&segment.path, damage_at, damaged as u64, lost);
        }
        self.next = self.next.max(lost_to);
        match resume {
            Some(offset) => {
                segment.reader.seek(SeekFrom::Start(offset))?;
                segment.offset = offset;
                segment.checked = offset;
                segment.passed = self.next - 1;
                Ok(self.next <= end)
            }
            None => {
                self.open = None;
                Ok(true)
            }
        }
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
            path: segment.path.clone(),
            reader,
            offset: 0,
            checked: 0,
            passed: segment.first.saturating_sub(1),
        });
        Ok(())
    }
}
