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
