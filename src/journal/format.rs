//! The on-disk record format: `[body length u32][crc32 u32][body]`, body = `[number u64]
//! [received µs i64][topic length u16][topic][payload]`, little endian.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use chrono::DateTime;

use super::Record;

pub(super) const HEADER: usize = 8;
pub(super) const MAX_BODY: usize = 64 * 1024 * 1024;

/// What a segment holds, read through to its end.
#[derive(Debug, Default)]
pub(super) struct SegmentScan {
    /// Where the last valid record ends: what follows is a torn tail (or garbage).
    pub valid_end: u64,
    pub last: Option<u64>,
    /// Damaged ranges with valid records after them: `(offset, length, first lost, last lost)`.
    pub damaged: Vec<(u64, u64, u64, u64)>,
}

/// Reads a segment through, checking every record, and finds its way past damaged ranges to the
/// records after them (see [`resync`]).
pub(super) fn scan_segment(path: &Path, first: u64) -> io::Result<SegmentScan> {
    let bytes = read_tolerant(path, 0)?;
    let mut scan = SegmentScan::default();
    let (mut offset, mut expected) = (0usize, first);
    while offset < bytes.len() {
        match record_at(&bytes, offset) {
            Some((no, len)) if no == expected => {
                offset += len;
                scan.last = Some(no);
                expected += 1;
                scan.valid_end = offset as u64;
            }
            _ => match resync(&bytes, offset, expected, u64::MAX) {
                Some((at, no)) => {
                    scan.damaged
                        .push((offset as u64, (at - offset) as u64, expected, no - 1));
                    offset = at;
                    expected = no;
                }
                None => break,
            },
        }
    }
    Ok(scan)
}

/// The number and size on disk of the valid record at `offset` of `bytes`, if one is there.
pub(super) fn record_at(bytes: &[u8], offset: usize) -> Option<(u64, usize)> {
    let head = bytes.get(offset..offset + HEADER + 8)?;
    let len = u32::from_le_bytes(self::bytes(&head[..4])) as usize;
    if !(18..=MAX_BODY).contains(&len) {
        return None;
    }
    let body = bytes.get(offset + HEADER..offset + HEADER + len)?;
    let crc = u32::from_le_bytes(self::bytes(&head[4..HEADER]));
    (crc32fast::hash(body) == crc).then(|| {
        (
            u64::from_le_bytes(self::bytes(&head[HEADER..])),
            HEADER + len,
        )
    })
}

/// The first valid record at or after `from` in `bytes` numbered within `numbers`: where the
/// journal picks up again after a damaged range. A candidate must have a plausible length and
/// number before its checksum is computed, so the walk costs little more than the bytes.
pub(super) fn resync(bytes: &[u8], from: usize, min_no: u64, max_no: u64) -> Option<(usize, u64)> {
    (from..=bytes.len().saturating_sub(HEADER + 18)).find_map(|at| {
        let head = bytes.get(at..at + HEADER + 8)?;
        let len = u32::from_le_bytes(self::bytes(&head[..4])) as usize;
        let no = u64::from_le_bytes(self::bytes(&head[HEADER..]));
        if !(18..=MAX_BODY).contains(&len) || !(min_no..=max_no).contains(&no) {
            return None;
        }
        record_at(bytes, at)
            .filter(|(n, _)| *n == no)
            .map(|_| (at, no))
    })
}

/// The bytes of a file from `offset` on. Read whole when the disk allows; should a read fail (a
/// bad sector), block by block, an unreadable block reading as zeros, so that what surrounds it
/// can still be found.
pub(super) fn read_tolerant(path: &Path, offset: u64) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut out = Vec::new();
    if file.read_to_end(&mut out).is_ok() {
        return Ok(out);
    }
    const BLOCK: usize = 4096;
    let len = file.metadata()?.len().saturating_sub(offset) as usize;
    let mut out = vec![0u8; len];
    for start in (0..len).step_by(BLOCK) {
        let end = (start + BLOCK).min(len);
        file.seek(SeekFrom::Start(offset + start as u64))?;
        let mut got = start;
        while got < end {
            match file.read(&mut out[got..end]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Left as zeros: the record it held fails its checksum.
                Err(_) => break,
            }
        }
    }
    Ok(out)
}

pub(super) fn body_len(record: &Record) -> usize {
    8 + 8 + 2 + record.topic.len() + record.payload.len()
}

/// A record from its body, `None` when the checksum or the layout is wrong.
pub(super) fn parse_body(body: Vec<u8>, crc: u32) -> Option<Record> {
    let len = body.len();
    if crc32fast::hash(&body) != crc {
        return None;
    }
    let no = u64::from_le_bytes(bytes(&body[..8]));
    let micros = i64::from_le_bytes(bytes(&body[8..16]));
    let topic_len = u16::from_le_bytes(bytes(&body[16..18])) as usize;
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

pub(super) enum Next {
    Record(Record),
    /// A complete record numbered below the one wanted, passed over: its number and size on
    /// disk.
    Skipped(u64, u64),
    /// No bytes left in the file.
    End,
    /// Bytes that are not a valid record: one still being written (past the journal's published
    /// end), or damage.
    Invalid,
}

/// Reads the next record at or after number `from`. Records below it are passed over by their
/// headers (their bodies are not read, nor checked: the caller got them elsewhere).
pub(super) fn read_record_from(reader: &mut BufReader<File>, from: u64) -> io::Result<Next> {
    match reader.fill_buf() {
        Ok([]) => return Ok(Next::End),
        Ok(_) => {}
        Err(_) => return Ok(Next::Invalid),
    }
    let mut head = [0u8; HEADER + 8];
    if reader.read_exact(&mut head).is_err() {
        return Ok(Next::Invalid);
    }
    let len = u32::from_le_bytes(bytes(&head[..4])) as usize;
    let crc = u32::from_le_bytes(bytes(&head[4..HEADER]));
    let no = u64::from_le_bytes(bytes(&head[HEADER..]));
    if !(18..=MAX_BODY).contains(&len) {
        return Ok(Next::Invalid);
    }
    if no < from {
        reader.seek_relative((len - 8) as i64)?;
        return Ok(Next::Skipped(no, (HEADER + len) as u64));
    }
    let mut body = vec![0u8; len];
    body[..8].copy_from_slice(&head[HEADER..]);
    if reader.read_exact(&mut body[8..]).is_err() {
        return Ok(Next::Invalid);
    }
    Ok(parse_body(body, crc).map_or(Next::Invalid, Next::Record))
}

pub(super) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    fs::rename(tmp, path)
}

/// The first `N` bytes of `slice`, which the caller has checked holds them.
fn bytes<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut array = [0; N];
    array.copy_from_slice(&slice[..N]);
    array
}
