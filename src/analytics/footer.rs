//! A bronze file's rows and span of device times from its Parquet footer: the row groups' row
//! counts and the `ts` column's statistics, which the collector's writer always records. A
//! footer without them (a file from another writer) leaves the file to DuckDB.

use std::path::Path;

use chrono::{DateTime, Utc};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::statistics::Statistics;

use super::engine::FileStats;

/// `None` when the footer cannot say (no statistics, another type, not Parquet at all).
pub fn stats(path: &Path) -> Option<FileStats> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).ok()?).ok()?;
    let metadata = reader.metadata();
    let schema = metadata.file_metadata().schema_descr();
    let ts = (0..schema.num_columns()).find(|&i| schema.column(i).name() == "ts")?;
    let (mut rows, mut min, mut max) = (0i64, None::<i64>, None::<i64>);
    for group in metadata.row_groups() {
        rows += group.num_rows();
        if group.num_rows() == 0 {
            continue;
        }
        let Statistics::Int64(values) = group.column(ts).statistics()? else {
            return None;
        };
        let (lo, hi) = (*values.min_opt()?, *values.max_opt()?);
        min = Some(min.map_or(lo, |m| m.min(lo)));
        max = Some(max.map_or(hi, |m| m.max(hi)));
    }
    let time = |micros: Option<i64>| micros.and_then(DateTime::<Utc>::from_timestamp_micros);
    Some(FileStats {
        rows,
        min_ts: time(min),
        max_ts: time(max),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::{DeviceId, MetricName, Reading};
    use crate::lake::{LakeRow, LakeWindow};

    #[test]
    fn the_collectors_files_say_their_rows_and_times_in_the_footer() {
        let at = |s| Utc.with_ymd_and_hms(2026, 11, 2, 10, 0, s).unwrap();
        let readings: Vec<Reading> = [7, 3, 59]
            .into_iter()
            .map(|s| Reading {
                device_id: DeviceId::parse("d").unwrap(),
                time: at(s),
                metric: MetricName::parse("power").unwrap(),
                value: 1.0,
                unit: None,
            })
            .collect();
        let rows: Vec<LakeRow<'_>> = readings
            .iter()
            .map(|reading| LakeRow {
                reading,
                device_type: None,
                seq: None,
                received_at: at(0),
                topic: "t",
                journal_no: 1,
            })
            .collect();
        let mut window = LakeWindow::new(1);
        window.add(&rows).unwrap();
        let (_, bytes, _) = window.finish().unwrap().remove(0);
        let dir = std::env::temp_dir().join(format!("footer-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("part.parquet");
        std::fs::write(&file, bytes).unwrap();
        let read = stats(&file).unwrap();
        assert_eq!(
            (read.rows, read.min_ts, read.max_ts),
            (3, Some(at(3)), Some(at(59)))
        );
        std::fs::write(&file, b"not parquet").unwrap();
        assert_eq!(stats(&file), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
