//! The Parquet lake's layout, in one place: the archive sink writes it, analytics reads it.
//! Every reading, one row each, in Parquet files Hive-partitioned by the
//! reading's UTC date: `lake/readings/date=YYYY-MM-DD/part-{first journal no}.parquet`. DuckDB,
//! Spark and Trino read the tree as it is (`read_parquet('lake/readings/*/*.parquet',
//! hive_partitioning = true)`).
//!
//! Files are built while an archive window gathers ([`LakeWindow`]), written per window, and
//! named by the journal number of the window's first record, like raw objects, so a window
//! replayed after a crash overwrites its files instead of adding duplicate rows. A raw
//! object's key always has `date=` right below the device folder, so the lake never mixes with a device's raw data, not even for a device called `lake`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, NaiveDate, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::domain::Reading;

/// A finished file of a window: its key, its bytes, and the journal numbers with rows in it (the
/// same shape as the raw archive's objects, which the archive sink writes alongside).
pub type WindowObject = (String, Vec<u8>, Vec<u64>);

/// The folder of the readings table inside the bucket (or archive directory).
pub const READINGS_PREFIX: &str = "lake/readings";

/// One row of the readings table.
#[derive(Debug, Clone, PartialEq)]
pub struct LakeRow<'a> {
    pub reading: &'a Reading,
    pub device_type: Option<&'a str>,
    /// The v2 sequence number of the message the reading came in, where it has one.
    pub seq: Option<u64>,
    pub received_at: DateTime<Utc>,
    pub topic: &'a str,
    /// The journal number of the message: with `metric` and `ts`, what identifies a row.
    pub journal_no: u64,
}

/// The readings table's schema. Times are UTC microseconds.
pub fn readings_schema() -> SchemaRef {
    let utc = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("ts", utc(), false),
        Field::new("device_id", DataType::Utf8, false),
        Field::new("device_type", DataType::Utf8, true),
        Field::new("metric", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
        Field::new("unit", DataType::Utf8, true),
        Field::new("seq", DataType::UInt64, true),
        Field::new("received_at", utc(), false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("journal_no", DataType::UInt64, false),
    ]))
}

/// The key of one lake file.
pub fn lake_object_key(date: NaiveDate, window_first_no: u64) -> String {
    format!(
        "{READINGS_PREFIX}/date={}/part-{window_first_no:020}.parquet",
        date.format("%Y-%m-%d")
    )
}

/// The lake files of one archive window, built as the window's records arrive: one Parquet
/// writer per UTC date of the readings. A writer holds its rows encoded and compressed, so a
/// window costs a few bytes per reading until it is written.
pub struct LakeWindow {
    first_no: u64,
    /// Per date: its file so far, and the journal numbers with rows in it.
    writers: BTreeMap<NaiveDate, (ArrowWriter<Vec<u8>>, Vec<u64>)>,
    properties: WriterProperties,
}

impl LakeWindow {
    pub fn new(window_first_no: u64) -> Self {
        Self {
            first_no: window_first_no,
            writers: BTreeMap::new(),
            properties: writer_properties(),
        }
    }

    /// Adds rows (any dates, any order).
    pub fn add(&mut self, rows: &[LakeRow<'_>]) -> Result<(), parquet::errors::ParquetError> {
        let mut by_date: BTreeMap<NaiveDate, Vec<&LakeRow<'_>>> = BTreeMap::new();
        for row in rows {
            by_date
                .entry(row.reading.time.date_naive())
                .or_default()
                .push(row);
        }
        for (date, rows) in by_date {
            let (writer, records) = match self.writers.entry(date) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert((
                    ArrowWriter::try_new(
                        Vec::new(),
                        readings_schema(),
                        Some(self.properties.clone()),
                    )?,
                    Vec::new(),
                )),
            };
            writer.write(&record_batch(&rows)?)?;
            for row in rows {
                if records.last() != Some(&row.journal_no) {
                    records.push(row.journal_no);
                }
            }
        }
        Ok(())
    }

    /// Bytes held so far (encoded rows and finished pages).
    pub fn bytes(&self) -> usize {
        self.writers
            .values()
            .map(|(w, _)| w.in_progress_size() + w.inner().len())
            .sum()
    }

    /// The finished files, `(key, Parquet bytes, journal numbers with rows in it)`.
    pub fn finish(self) -> Result<Vec<WindowObject>, parquet::errors::ParquetError> {
        let first_no = self.first_no;
        self.writers
            .into_iter()
            .map(|(date, (writer, records))| {
                Ok((
                    lake_object_key(date, first_no),
                    writer.into_inner()?,
                    records,
                ))
            })
            .collect()
    }
}

/// Snappy, and dictionaries only where values repeat (ids, names, units, topics): hashing every
/// timestamp and value for a dictionary that overflows anyway cost a third of the encoding time.
fn writer_properties() -> WriterProperties {
    let mut builder = WriterProperties::builder().set_compression(Compression::SNAPPY);
    for column in ["ts", "value", "seq", "received_at", "journal_no"] {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    builder.build()
}

/// Builds the lake files of a window at once, for tests (see [`LakeWindow`]).
#[cfg(test)]
pub fn lake_objects(
    rows: &[LakeRow<'_>],
    window_first_no: u64,
) -> Result<Vec<WindowObject>, parquet::errors::ParquetError> {
    let mut window = LakeWindow::new(window_first_no);
    window.add(rows)?;
    window.finish()
}

fn record_batch(rows: &[&LakeRow<'_>]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let n = rows.len();
    let mut ts = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut device_id = StringBuilder::with_capacity(n, n * 16);
    let mut device_type = StringBuilder::with_capacity(n, n * 8);
    let mut metric = StringBuilder::with_capacity(n, n * 12);
    let mut value = Float64Builder::with_capacity(n);
    let mut unit = StringBuilder::with_capacity(n, n * 2);
    let mut seq = UInt64Builder::with_capacity(n);
    let mut received_at = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut topic = StringBuilder::with_capacity(n, n * 24);
    let mut journal_no = UInt64Builder::with_capacity(n);
    for row in rows {
        ts.append_value(row.reading.time.timestamp_micros());
        device_id.append_value(row.reading.device_id.as_str());
        device_type.append_option(row.device_type);
        metric.append_value(row.reading.metric.as_str());
        value.append_value(row.reading.value);
        unit.append_option(row.reading.unit.as_ref().map(|u| u.as_str()));
        seq.append_option(row.seq);
        received_at.append_value(row.received_at.timestamp_micros());
        topic.append_value(row.topic);
        journal_no.append_value(row.journal_no);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ts.finish()),
        Arc::new(device_id.finish()),
        Arc::new(device_type.finish()),
        Arc::new(metric.finish()),
        Arc::new(value.finish()),
        Arc::new(unit.finish()),
        Arc::new(seq.finish()),
        Arc::new(received_at.finish()),
        Arc::new(topic.finish()),
        Arc::new(journal_no.finish()),
    ];
    RecordBatch::try_new(readings_schema(), columns)
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, Float64Array, StringArray, UInt64Array};
    use bytes::Bytes;
    use chrono::TimeZone;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;
    use crate::domain::{DeviceId, MetricName, Unit};

    fn reading(day: u32, value: f64) -> Reading {
        Reading {
            device_id: DeviceId::parse("meter-1").unwrap(),
            time: Utc.with_ymd_and_hms(2026, 2, day, 23, 59, 59).unwrap(),
            metric: MetricName::parse("voltage_dc").unwrap(),
            value,
            unit: Some(Unit::parse("V").unwrap()),
        }
    }

    #[test]
    fn a_window_becomes_one_readable_file_per_date() {
        let (a, b, c) = (reading(12, 750.5), reading(12, 751.0), reading(13, 749.0));
        let received = Utc.with_ymd_and_hms(2026, 2, 14, 0, 0, 0).unwrap();
        let row = |reading, no| LakeRow {
            reading,
            device_type: (no != 9).then_some("dc_meter"),
            seq: Some(no),
            received_at: received,
            topic: "iot/meter-1/telemetry",
            journal_no: no,
        };
        let files = lake_objects(&[row(&a, 7), row(&b, 8), row(&c, 9)], 7).unwrap();
        let keys: Vec<&str> = files.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(
            (files[0].2.as_slice(), files[1].2.as_slice()),
            (&[7, 8][..], &[9][..])
        );
        assert_eq!(
            keys,
            [
                "lake/readings/date=2026-02-12/part-00000000000000000007.parquet",
                "lake/readings/date=2026-02-13/part-00000000000000000007.parquet"
            ]
        );
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(files[0].1.clone()))
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        assert_eq!(batches.len(), 1);
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.schema(), readings_schema());
        let values = batch
            .column_by_name("value")
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(values.values(), &[750.5, 751.0]);
        let types = batch
            .column_by_name("device_type")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(types.value(0), "dc_meter");
        let seqs = batch
            .column_by_name("journal_no")
            .unwrap()
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        assert_eq!(seqs.values(), &[7, 8]);
        let other = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(files[1].1.clone()))
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert!(other.column_by_name("device_type").unwrap().is_null(0));
    }
}
