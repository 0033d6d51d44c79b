//! The on-disk record format: `[body length u32][crc32 u32][body]`, body = `[number u64]
//! [received µs i64][topic length u16][topic][payload]`, little endian.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use chrono::DateTime;

use super::Record;

pub(super) const HEADER: usize = 8;
pub(super) const MAX_BODY: usize = 64 * 1024 * 1024;

/// Returns the length of the valid prefix of a segment and its last record number.
pub(super) fn scan_valid(path: &Path, first: u64) -> io::Result<(u64, Option<u64>)> {
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
    /// The end of the complete records, or a torn/corrupt one.
    End,
}

/// Reads the next record at or after number `from`. Records below it are passed over by their
/// headers (they are complete: the reader only moves past records the journal has written).
pub(super) fn read_record_from(reader: &mut BufReader<File>, from: u64) -> io::Result<Next> {
    let mut head = [0u8; HEADER + 8];
    match reader.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Next::End),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(bytes(&head[..4])) as usize;
    let crc = u32::from_le_bytes(bytes(&head[4..HEADER]));
    let no = u64::from_le_bytes(bytes(&head[HEADER..]));
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
