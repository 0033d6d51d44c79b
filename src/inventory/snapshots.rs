//! The router's answers as the lake keeps them: every poll one Parquet file per table,
//! Hive-partitioned by the poll's UTC date — `lake/leases/date=YYYY-MM-DD/poll-{time}.parquet`
//! and `lake/wifi/date=.../poll-{time}.parquet` — so the inventory (latest snapshot) and its
//! history (every snapshot of a MAC) are plain reads for DuckDB, Spark or Trino.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Int32Builder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::clients::routeros::{Lease, Station};

pub const LEASES_PREFIX: &str = "lake/leases";
pub const WIFI_PREFIX: &str = "lake/wifi";

/// The key of one poll's file of `prefix`.
pub fn snapshot_key(prefix: &str, polled_at: DateTime<Utc>) -> String {
    format!(
        "{prefix}/date={}/poll-{}.parquet",
        polled_at.format("%Y-%m-%d"),
        polled_at.format("%Y%m%dT%H%M%S%.3fZ")
    )
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub fn leases_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("polled_at", utc(), false),
        Field::new("router", DataType::Utf8, false),
        Field::new("lease_id", DataType::Utf8, false),
        Field::new("mac", DataType::Utf8, false),
        Field::new("address", DataType::Utf8, true),
        Field::new("client_id", DataType::Utf8, true),
        Field::new("host_name", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("dynamic", DataType::Boolean, false),
        Field::new("disabled", DataType::Boolean, false),
        Field::new("blocked", DataType::Boolean, false),
        Field::new("server", DataType::Utf8, true),
        Field::new("last_seen", utc(), true),
        Field::new("expires_at", utc(), true),
        Field::new("active_address", DataType::Utf8, true),
        Field::new("comment", DataType::Utf8, true),
    ]))
}

pub fn wifi_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("polled_at", utc(), false),
        Field::new("router", DataType::Utf8, false),
        Field::new("mac", DataType::Utf8, false),
        Field::new("interface", DataType::Utf8, true),
        Field::new("signal_dbm", DataType::Int32, true),
        Field::new("uptime_s", DataType::UInt64, true),
    ]))
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// `polled_at - ago`, for RouterOS's "so long ago" fields.
fn before(polled_at: DateTime<Utc>, ago: std::time::Duration) -> Option<i64> {
    chrono::Duration::from_std(ago)
        .ok()
        .and_then(|d| polled_at.checked_sub_signed(d))
        .map(micros)
}

fn after(polled_at: DateTime<Utc>, left: std::time::Duration) -> Option<i64> {
    chrono::Duration::from_std(left)
        .ok()
        .and_then(|d| polled_at.checked_add_signed(d))
        .map(micros)
}

fn parquet(
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(properties))?;
    writer.write(&batch)?;
    writer.into_inner()
}

/// One poll's leases as a Parquet file.
pub fn leases_file(
    polled_at: DateTime<Utc>,
    router: &str,
    leases: &[Lease],
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let n = leases.len();
    let mut polled = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut routers = StringBuilder::new();
    let mut ids = StringBuilder::new();
    let mut macs = StringBuilder::new();
    let mut addresses = StringBuilder::new();
    let mut client_ids = StringBuilder::new();
    let mut host_names = StringBuilder::new();
    let mut statuses = StringBuilder::new();
    let mut dynamic = BooleanBuilder::with_capacity(n);
    let mut disabled = BooleanBuilder::with_capacity(n);
    let mut blocked = BooleanBuilder::with_capacity(n);
    let mut servers = StringBuilder::new();
    let mut last_seen = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut expires = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut active = StringBuilder::new();
    let mut comments = StringBuilder::new();
    for l in leases {
        polled.append_value(micros(polled_at));
        routers.append_value(router);
        ids.append_value(&l.id);
        macs.append_value(l.mac.to_string());
        addresses.append_option(l.address.as_deref());
        client_ids.append_option(l.client_id.as_deref());
        host_names.append_option(l.host_name.as_deref());
        statuses.append_option(l.status.as_deref());
        dynamic.append_value(l.dynamic);
        disabled.append_value(l.disabled);
        blocked.append_value(l.blocked);
        servers.append_option(l.server.as_deref());
        last_seen.append_option(l.last_seen.and_then(|d| before(polled_at, d)));
        expires.append_option(l.expires_after.and_then(|d| after(polled_at, d)));
        active.append_option(l.active_address.as_deref());
        comments.append_option(l.comment.as_deref());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(polled.finish()),
        Arc::new(routers.finish()),
        Arc::new(ids.finish()),
        Arc::new(macs.finish()),
        Arc::new(addresses.finish()),
        Arc::new(client_ids.finish()),
        Arc::new(host_names.finish()),
        Arc::new(statuses.finish()),
        Arc::new(dynamic.finish()),
        Arc::new(disabled.finish()),
        Arc::new(blocked.finish()),
        Arc::new(servers.finish()),
        Arc::new(last_seen.finish()),
        Arc::new(expires.finish()),
        Arc::new(active.finish()),
        Arc::new(comments.finish()),
    ];
    parquet(leases_schema(), columns)
}

/// One poll's Wi-Fi stations as a Parquet file.
pub fn wifi_file(
    polled_at: DateTime<Utc>,
    router: &str,
    stations: &[Station],
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let n = stations.len();
    let mut polled = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut routers = StringBuilder::new();
    let mut macs = StringBuilder::new();
    let mut interfaces = StringBuilder::new();
    let mut signals = Int32Builder::with_capacity(n);
    let mut uptimes = UInt64Builder::with_capacity(n);
    for s in stations {
        polled.append_value(micros(polled_at));
        routers.append_value(router);
        macs.append_value(s.mac.to_string());
        interfaces.append_option(s.interface.as_deref());
        signals.append_option(s.signal);
        uptimes.append_option(s.uptime.map(|u| u.as_secs()));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(polled.finish()),
        Arc::new(routers.finish()),
        Arc::new(macs.finish()),
        Arc::new(interfaces.finish()),
        Arc::new(signals.finish()),
        Arc::new(uptimes.finish()),
    ];
    parquet(wifi_schema(), columns)
}
