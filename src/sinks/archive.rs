//! The raw archive: payloads exactly as received, one JSON array per device per flush window,
//! under `{device_id}/date=YYYY-MM-DD/...`. Windows are cut by journal position, and an object's
//! key is named by the journal number of the window's first record, so replaying a window after a
//! crash rewrites the same objects instead of adding copies.

use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::DeviceId;
use crate::journal::Record;

/// An object in the archive, as `GET /api/devices/{id}/raw-data` lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArchiveObject {
    /// The object key, relative to the bucket (or archive directory).
    pub filename: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("archive I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid object name {0:?}")]
    InvalidKey(String),
}

/// The one function that builds raw-archive keys.
pub fn raw_object_key(
    device: &DeviceId,
    window_first_no: u64,
    first_received: DateTime<Utc>,
) -> String {
    format!(
        "{device}/date={}/{}-{window_first_no:020}.json",
        first_received.format("%Y-%m-%d"),
        first_received.format("%Y%m%dT%H%M%SZ")
    )
}

/// Where archive objects live.
#[derive(Debug, Clone)]
pub enum ObjectStore {
    Local(PathBuf),
}

impl ObjectStore {
    fn path(&self, key: &str) -> Result<PathBuf, ArchiveError> {
        let ObjectStore::Local(root) = self;
        let relative = Path::new(key);
        if key.is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(ArchiveError::InvalidKey(key.to_owned()));
        }
        Ok(root.join(relative))
    }

    /// Whether the archive can be written (the directory exists or can be made).
    pub async fn check(&self) -> Result<(), ArchiveError> {
        let ObjectStore::Local(root) = self;
        tokio::fs::create_dir_all(root).await?;
        Ok(())
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ArchiveError> {
        let path = self.path(key)?;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("part");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(tmp, path)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        let path = self.path(key)?;
        match tokio::fs::read(path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Objects whose key starts with `prefix` (which ends with `/`), newest key first.
    pub async fn list(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<ArchiveObject>, ArchiveError> {
        let ObjectStore::Local(root) = self.clone();
        let dir = self.path(prefix.trim_end_matches('/'))?;
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![dir];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                };
                for entry in entries {
                    let entry = entry?;
                    let meta = entry.metadata()?;
                    if meta.is_dir() {
                        stack.push(entry.path());
                    } else if entry
                        .path()
                        .extension()
                        .is_some_and(|e| e == "json" || e == "parquet")
                    {
                        let key = entry
                            .path()
                            .strip_prefix(&root)
                            .map_err(std::io::Error::other)?
                            .to_string_lossy()
                            .into_owned();
                        if key.starts_with(&prefix) {
                            out.push(ArchiveObject {
                                filename: key,
                                size: meta.len(),
                                last_modified: meta
                                    .modified()
                                    .map(DateTime::<Utc>::from)
                                    .unwrap_or_default(),
                            });
                        }
                    }
                }
            }
            out.sort_by(|a, b| b.filename.cmp(&a.filename));
            out.truncate(limit);
            Ok(out)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Builds the raw objects of one window: `(key, JSON array of {received_at, topic, payload})`,
/// the payload spliced in verbatim (it is valid JSON: the collector decoded it).
pub fn raw_objects(window: &[(DeviceId, &Record)]) -> Vec<(String, Vec<u8>)> {
    let mut by_device: std::collections::BTreeMap<&DeviceId, Vec<&Record>> = Default::default();
    for (device, record) in window {
        by_device.entry(device).or_default().push(record);
    }
    let Some(first) = window.first().map(|(_, r)| *r) else {
        return Vec::new();
    };
    by_device
        .into_iter()
        .map(|(device, records)| {
            let mut body = Vec::with_capacity(records.iter().map(|r| r.payload.len() + 96).sum());
            body.push(b'[');
            for (i, r) in records.iter().enumerate() {
                if i > 0 {
                    body.extend_from_slice(b",\n");
                }
                body.extend_from_slice(b"{\"received_at\":");
                body.extend_from_slice(
                    serde_json::to_string(&r.received.to_rfc3339())
                        .unwrap_or_default()
                        .as_bytes(),
                );
                body.extend_from_slice(b",\"topic\":");
                body.extend_from_slice(
                    serde_json::to_string(&r.topic)
                        .unwrap_or_default()
                        .as_bytes(),
                );
                body.extend_from_slice(b",\"payload\":");
                body.extend_from_slice(&r.payload);
                body.push(b'}');
            }
            body.extend_from_slice(b"]\n");
            (raw_object_key(device, first.no, first.received), body)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_objects_are_valid_json_with_payloads_verbatim() {
        let record = |no, topic: &str, payload: &str| Record {
            no,
            received: DateTime::from_timestamp(1_770_912_000, 0).unwrap(),
            topic: topic.into(),
            payload: payload.as_bytes().to_vec(),
        };
        let a = record(7, "iot/a/telemetry", "{\"t\":  1}");
        let b = record(8, "iot/b/telemetry", "{\"t\":2}");
        let c = record(9, "iot/a/telemetry", "{\"t\":\n3}");
        let (da, db) = (DeviceId::parse("a").unwrap(), DeviceId::parse("b").unwrap());
        let objects = raw_objects(&[(da.clone(), &a), (db, &b), (da, &c)]);
        assert_eq!(objects.len(), 2);
        assert_eq!(
            objects[0].0,
            "a/date=2026-02-12/20260212T160000Z-00000000000000000007.json"
        );
        let parsed: serde_json::Value = serde_json::from_slice(&objects[0].1).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), 2);
        assert!(
            String::from_utf8_lossy(&objects[0].1).contains("{\"t\":  1}"),
            "verbatim"
        );
    }

    #[test]
    fn keys_that_escape_the_archive_are_refused() {
        let store = ObjectStore::Local(PathBuf::from("/tmp/x"));
        for key in ["../etc/passwd", "/abs", "a/../../b", ""] {
            assert!(store.path(key).is_err(), "{key}");
        }
    }
}
