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
fn reading_up_to_the_end_returns_what_there_is() {
    let dir = temp_dir();
    let (mut journal, end) = Journal::open(&dir, 1 << 20).unwrap();
    assert!(
        JournalReader::new(&dir, 0)
            .read(end.current(), 10)
            .unwrap()
            .is_empty(),
        "empty journal"
    );
    journal.append(&[entry(0), entry(1)]).unwrap();
    let mut reader = JournalReader::new(&dir, 0);
    assert_eq!(reader.read(end.current(), 10).unwrap().len(), 2);
    assert!(reader.read(end.current(), 10).unwrap().is_empty());
    journal.append(&[entry(2)]).unwrap();
    assert_eq!(
        reader.read(end.current(), 10).unwrap()[0].no,
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

#[test]
fn a_second_process_cannot_open_a_journal_in_use() {
    let dir = temp_dir();
    let (journal, _) = Journal::open(&dir, 1 << 20).unwrap();
    let refused = Journal::open(&dir, 1 << 20)
        .err()
        .expect("refused while open");
    assert_eq!(refused.kind(), io::ErrorKind::ResourceBusy);
    let message = refused.to_string();
    assert!(
        message.contains("in use by another devicehub process"),
        "{message}"
    );
    assert!(
        message.contains(&std::process::id().to_string()),
        "{message}"
    );
    drop(journal);
    assert!(
        Journal::open(&dir, 1 << 20).is_ok(),
        "free again once closed"
    );
    fs::remove_dir_all(dir).unwrap();
}

/// Flips `count` bytes at `offset` of a file, as a bad sector or a cosmic ray would.
fn flip(path: &Path, offset: usize, count: usize) {
    let mut bytes = fs::read(path).unwrap();
    for b in &mut bytes[offset..offset + count] {
        *b ^= 0x5a;
    }
    fs::write(path, bytes).unwrap();
}

fn numbers(records: &[Record]) -> Vec<u64> {
    records.iter().map(|r| r.no).collect()
}

/// What the log has received so far.
fn reported(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Damage>) -> Vec<Damage> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

#[test]
fn a_damaged_record_in_a_middle_segment_is_passed_over_and_reported_once() {
    let dir = temp_dir();
    let (mut journal, end) = Journal::open(&dir, 300).unwrap();
    for i in 0..60 {
        journal.append(&[entry(i)]).unwrap();
    }
    let segments = list_segments(&dir).unwrap();
    assert!(segments.len() > 4, "{segments:?}");
    // The second record of a middle segment: its topic bytes.
    let middle = &segments[segments.len() / 2];
    let first_len = HEADER
        + 18
        + format!("iot/d{}/telemetry", middle.first - 1).len()
        + format!("{{\"n\":{}}}", middle.first - 1).len();
    flip(&middle.path, first_len + HEADER + 20, 3);
    let damaged = middle.first + 1;

    let log = journal.damage().clone();
    let mut rx = log.take_receiver().unwrap();
    // Two sinks read through it: each gets every other record, in order, and it is reported once.
    for _ in 0..2 {
        let mut reader = JournalReader::reporting(&dir, 0, log.clone());
        let mut got = Vec::new();
        loop {
            let records = reader.read(end.current(), 7).unwrap();
            if records.is_empty() {
                break;
            }
            got.extend(numbers(&records));
        }
        let expected: Vec<u64> = (1..=60).filter(|n| *n != damaged).collect();
        assert_eq!(got, expected);
    }
    let found = reported(&mut rx);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].segment, middle.path);
    assert_eq!(found[0].offset, first_len as u64);
    assert_eq!(found[0].lost, Some(damaged..=damaged));
    assert_eq!(found[0].records(), 1);
    let kept = fs::read(&found[0].kept_as).unwrap();
    assert_eq!(
        kept.len() as u64,
        found[0].bytes,
        "the damaged bytes are kept aside"
    );
    drop(journal);

    // Opened again, the journal checks its segments: the damage is found, but was reported by
    // the earlier run (it is kept aside), and nothing after it is cut.
    let (mut journal, end) = Journal::open(&dir, 300).unwrap();
    assert_eq!(end.current(), 60);
    let mut rx = journal.damage().take_receiver().unwrap();
    assert!(rx.try_recv().is_err(), "reported once, across runs");
    assert_eq!(*journal.append(&[entry(60)]).unwrap().start(), 61);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn damage_in_the_segment_being_written_keeps_the_records_after_it() {
    let dir = temp_dir();
    let (mut journal, _) = Journal::open(&dir, 1 << 20).unwrap();
    journal
        .append(&(0..10).map(entry).collect::<Vec<_>>())
        .unwrap();
    drop(journal);
    // The third record's checksum.
    let len = |i: usize| {
        HEADER + 18 + format!("iot/d{i}/telemetry").len() + format!("{{\"n\":{i}}}").len()
    };
    flip(&segment_path(&dir, 1), len(0) + len(1) + 5, 2);

    // Not a torn tail: the seven records after it stay, and numbering goes on after them.
    let (mut journal, end) = Journal::open(&dir, 1 << 20).unwrap();
    assert_eq!(end.current(), 10);
    let found = reported(&mut journal.damage().take_receiver().unwrap());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].lost, Some(3..=3));
    assert_eq!(*journal.append(&[entry(10)]).unwrap().start(), 11);
    let mut reader = JournalReader::reporting(&dir, 0, journal.damage().clone());
    assert_eq!(
        numbers(&reader.read(11, 100).unwrap()),
        [1, 2, 4, 5, 6, 7, 8, 9, 10, 11]
    );
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_damaged_length_after_records_got_elsewhere_is_passed_over_too() {
    let dir = temp_dir();
    let (mut journal, end) = Journal::open(&dir, 1 << 20).unwrap();
    journal
        .append(&(0..10).map(entry).collect::<Vec<_>>())
        .unwrap();
    // The fourth record's length: a reader passing over records by their headers is misled.
    let len = |i: usize| {
        HEADER + 18 + format!("iot/d{i}/telemetry").len() + format!("{{\"n\":{i}}}").len()
    };
    flip(&segment_path(&dir, 1), len(0) + len(1) + len(2), 1);
    let mut reader = JournalReader::new(&dir, 0);
    reader.skip_to(5);
    assert_eq!(
        numbers(&reader.read(end.current(), 100).unwrap()),
        [6, 7, 8, 9, 10]
    );
    // And a reader from the start loses the one record.
    let mut reader = JournalReader::new(&dir, 0);
    assert_eq!(
        numbers(&reader.read(end.current(), 100).unwrap()),
        [1, 2, 3, 5, 6, 7, 8, 9, 10]
    );
    drop(journal);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn damage_at_the_end_of_what_is_written_waits_for_the_next_record() {
    let dir = temp_dir();
    let (mut journal, end) = Journal::open(&dir, 1 << 20).unwrap();
    journal
        .append(&(0..3).map(entry).collect::<Vec<_>>())
        .unwrap();
    let len = |i: usize| {
        HEADER + 18 + format!("iot/d{i}/telemetry").len() + format!("{{\"n\":{i}}}").len()
    };
    flip(&segment_path(&dir, 1), len(0) + len(1) + HEADER + 2, 1);
    let mut reader = JournalReader::new(&dir, 0);
    assert_eq!(numbers(&reader.read(end.current(), 100).unwrap()), [1, 2]);
    assert!(reader.read(end.current(), 100).unwrap().is_empty());
    journal.append(&[entry(3), entry(4)]).unwrap();
    assert_eq!(numbers(&reader.read(end.current(), 100).unwrap()), [4, 5]);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_damaged_cursor_file_starts_the_sink_over() {
    let dir = temp_dir();
    let (journal, _) = Journal::open(&dir, 1 << 20).unwrap();
    let cursor = FileCursor::new(&journal, "archive");
    fs::write(dir.join("archive.cursor"), b"\x0012\xff").unwrap();
    assert_eq!(cursor.load().unwrap(), 0);
    fs::remove_dir_all(dir).unwrap();
}
