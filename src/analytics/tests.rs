use chrono::TimeZone;

use super::catalog::LakeFile;
use super::gold::consecutive_days;
use super::silver::{hours_with_readings, inputs_of, silver_key};
use super::*;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, h, m, 0).unwrap()
}

fn file(key: &str, rows: i64, min: DateTime<Utc>, max: DateTime<Utc>) -> LakeFile {
    LakeFile {
        key: key.into(),
        size: 1,
        rows,
        min_ts: Some(min),
        max_ts: Some(max),
    }
}

fn hour(h: u32) -> NaiveDateTime {
    at(h, 0).naive_utc()
}

#[test]
fn a_file_counts_in_every_hour_it_has_readings_in() {
    let day = at(0, 0).date_naive();
    let files = [
        file("a", 100, at(10, 59), at(11, 1)),
        file("b", 10, at(13, 30), at(13, 30)),
        LakeFile {
            min_ts: None,
            max_ts: None,
            ..file("empty", 0, at(0, 0), at(0, 0))
        },
    ];
    assert_eq!(
        hours_with_readings(&files, &[day]),
        [hour(10), hour(11), hour(13)]
    );
    assert_eq!(hours_with_readings(&files, &[day.succ_opt().unwrap()]), []);
    let keys = |v: Vec<&LakeFile>| v.iter().map(|f| f.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(inputs_of(&files, hour(11), hour(12))), ["a"]);
    assert_eq!(keys(inputs_of(&files, hour(12), hour(14))), ["b"]);
}

#[test]
fn a_silver_hour_and_its_summaries_are_hive_partitions() {
    assert_eq!(
        silver_key("readings", hour(7)),
        "lake/silver/readings/date=2026-11-20/hour=07/data.parquet"
    );
    for (_, folder) in models::HOURLY {
        assert_eq!(
            silver_key(folder, hour(23)),
            format!("lake/silver/{folder}/date=2026-11-20/hour=23/data.parquet")
        );
    }
}

#[test]
fn gold_batches_are_runs_of_consecutive_days() {
    let day = |d: u32| (NaiveDate::from_ymd_opt(2026, 11, d).unwrap(), String::new());
    let days = [day(1), day(2), day(3), day(5), day(6)];
    let runs: Vec<usize> = consecutive_days(&days, 2).iter().map(|r| r.len()).collect();
    assert_eq!(runs, [2, 1, 2]);
    assert!(consecutive_days(&[], 7).is_empty());
}

#[test]
fn fingerprints_change_with_any_input() {
    assert_eq!(fingerprint(["a", "b"]), fingerprint(["a", "b"]));
    assert_ne!(fingerprint(["a", "b"]), fingerprint(["ab"]));
    assert_ne!(fingerprint(["a", "b"]), fingerprint(["b", "a"]));
}
