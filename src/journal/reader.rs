//! A sink's reading end of the journal's files.

use std::fs::File;
use std::io::{self, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::format::{body_len, read_record_from, Next, HEADER};
use super::{list_segments, segment_path, Record};

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
