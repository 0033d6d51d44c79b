//! The raw archive: payloads exactly as received, one JSON array per device per flush window,
//! under `{device_id}/date=YYYY-MM-DD/...`. Windows are cut by journal position, and an object's
//! key is named by the journal number of the window's first record, so replaying a window after a
//! crash rewrites the same objects instead of adding copies.

use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::s3::S3Store;
use crate::configuration::{ArchiveBackend, Settings};
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
    #[error("S3: {0}")]
    S3(String),
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

/// Where archive objects live: a local directory, or an S3 / MinIO bucket.
#[derive(Debug, Clone)]
pub enum ObjectStore {
    Local(PathBuf),
    S3(S3Store),
}

impl ObjectStore {
    /// The store the settings name; for S3 the client only (see [`ObjectStore::prepare`]).
    pub fn from_settings(settings: &Settings) -> Result<Self, ArchiveError> {
        Ok(match settings.archive.backend {
            ArchiveBackend::Local => ObjectStore::Local(settings.archive.dir.clone()),
            ArchiveBackend::S3 => ObjectStore::S3(S3Store::new(&settings.s3)?),
        })
    }

    /// A key as a relative path of plain names only: nothing that escapes the archive.
    fn checked_key(key: &str) -> Result<&Path, ArchiveError> {
        let relative = Path::new(key);
        if key.is_empty()
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(ArchiveError::InvalidKey(key.to_owned()));
        }
        Ok(relative)
    }

    fn path(root: &Path, key: &str) -> Result<PathBuf, ArchiveError> {
        Ok(root.join(Self::checked_key(key)?))
    }

    /// Makes the store writable: creates the directory, or the bucket when it is missing.
    pub async fn prepare(&self) -> Result<(), ArchiveError> {
        match self {
            ObjectStore::Local(root) => Ok(tokio::fs::create_dir_all(root).await?),
            ObjectStore::S3(s3) => s3.ensure_bucket().await,
        }
    }

    /// Whether the archive answers (for `/readyz`).
    pub async fn check(&self) -> Result<(), ArchiveError> {
        match self {
            ObjectStore::Local(root) => Ok(tokio::fs::create_dir_all(root).await?),
            ObjectStore::S3(s3) => s3.check().await,
        }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ArchiveError> {
        let content_type = if key.ends_with(".parquet") {
            "application/vnd.apache.parquet"
        } else {
            "application/json"
        };
        let root = match self {
            ObjectStore::S3(s3) => return s3.put(key, bytes, content_type).await,
            ObjectStore::Local(root) => root,
        };
        let path = Self::path(root, key)?;
        tokio::task::spawn_blocking(move || write_file(&path, &bytes))
            .await
            .map_err(std::io::Error::other)??;
        Ok(())
    }

    /// Writes many objects: on a local directory in one blocking task, on S3 sixteen requests
    /// at a time. Returns the objects that could not be written, with the first error.
    pub async fn put_all(
        &self,
        objects: Vec<(String, Vec<u8>)>,
    ) -> (Vec<(String, Vec<u8>)>, Option<ArchiveError>) {
        use futures_util::StreamExt;
        match self {
            ObjectStore::Local(root) => {
                let root = root.clone();
                let written = tokio::task::spawn_blocking(move || {
                    let mut failed = Vec::new();
                    let mut error = None;
                    for (key, bytes) in objects {
                        let result =
                            Self::path(&root, &key).and_then(|path| Ok(write_file(&path, &bytes)?));
                        if let Err(e) = result {
                            error.get_or_insert(e);
                            failed.push((key, bytes));
                        }
                    }
                    (failed, error)
                })
                .await;
                written.unwrap_or_else(|e| {
                    (Vec::new(), Some(ArchiveError::Io(std::io::Error::other(e))))
                })
            }
            ObjectStore::S3(_) => {
                let results: Vec<_> = futures_util::stream::iter(objects)
                    .map(|(key, bytes)| async move {
                        let result = self.put(&key, bytes.clone()).await;
                        (key, bytes, result)
                    })
                    .buffer_unordered(16)
                    .collect()
                    .await;
                let mut failed = Vec::new();
                let mut error = None;
                for (key, bytes, result) in results {
                    if let Err(e) = result {
                        error.get_or_insert(e);
                        failed.push((key, bytes));
                    }
                }
                (failed, error)
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ArchiveError> {
        let root = match self {
            ObjectStore::S3(s3) => {
                Self::checked_key(key)?;
                return s3.get(key).await;
            }
            ObjectStore::Local(root) => root,
        };
        match tokio::fs::read(Self::path(root, key)?).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Up to `limit` objects whose key starts with `prefix`, newest (largest) key first.
    ///
    /// Keys are time-partitioned (`.../date=YYYY-MM-DD/...`), so when `prefix` names a folder
    /// its `date=` partitions are read newest first and reading stops once `limit` objects are
    /// found: a device's listing costs its newest days, not its whole history.
    pub async fn list(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<ArchiveObject>, ArchiveError> {
        let mut out = Vec::new();
        if prefix.ends_with('/') {
            let mut folders = self.folders(prefix).await?;
            folders.retain(|f| f[prefix.len()..].starts_with("date="));
            folders.sort_unstable_by(|a, b| b.cmp(a));
            for folder in &folders {
                let mut objects = self.list_all(folder).await?;
                objects.sort_by(|a, b| b.filename.cmp(&a.filename));
                out.extend(objects);
                if out.len() >= limit {
                    break;
                }
            }
            if !folders.is_empty() {
                out.truncate(limit);
                return Ok(out);
            }
        }
        out = self.list_all(prefix).await?;
        out.sort_by(|a, b| b.filename.cmp(&a.filename));
        out.truncate(limit);
        Ok(out)
    }

    /// The sub-folders right below `prefix` (which ends with `/`), each ending with `/`.
    async fn folders(&self, prefix: &str) -> Result<Vec<String>, ArchiveError> {
        let root = match self {
            ObjectStore::S3(s3) => return s3.folders(prefix).await,
            ObjectStore::Local(root) => root.clone(),
        };
        let dir = Self::path(&root, prefix.trim_end_matches('/'))?;
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    out.push(format!("{prefix}{}/", entry.file_name().to_string_lossy()));
                }
            }
            Ok(out)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Every object whose key starts with `prefix`, in no particular order.
    async fn list_all(&self, prefix: &str) -> Result<Vec<ArchiveObject>, ArchiveError> {
        let root = match self {
            ObjectStore::S3(s3) => return s3.list(prefix).await,
            ObjectStore::Local(root) => root.clone(),
        };
        // Walk the deepest folder the prefix names, and filter by the rest.
        let folder = match prefix.rfind('/') {
            Some(i) => Self::path(&root, &prefix[..i])?,
            None => root.clone(),
        };
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![folder];
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
                        continue;
                    }
                    // Finished objects only: a `.part` file is a write in progress.
                    if !entry
                        .path()
                        .extension()
                        .is_some_and(|e| e == "json" || e == "parquet")
                    {
                        continue;
                    }
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
            Ok(out)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}

/// Writes a file beside its name and renames it, so a reader never sees half an object. The
/// folders usually exist: they are made only when the write says they are missing.
fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("part");
    if let Err(e) = std::fs::write(&tmp, bytes) {
        let dir = path
            .parent()
            .filter(|_| e.kind() == std::io::ErrorKind::NotFound);
        let Some(dir) = dir else { return Err(e) };
        std::fs::create_dir_all(dir)?;
        std::fs::write(&tmp, bytes)?;
    }
    std::fs::rename(tmp, path)
}

/// The raw objects of one window, built as its records arrive: per device a JSON array of
/// `{received_at, topic, payload}`, the payload spliced in verbatim (it is valid JSON: the
/// collector decoded it). Keys are named by the window's first record.
pub struct RawWindow {
    first_no: u64,
    first_received: DateTime<Utc>,
    bodies: std::collections::HashMap<DeviceId, Vec<u8>, foldhash::fast::RandomState>,
    bytes: usize,
    /// The last receive time and its RFC 3339 text: a batch of records shares one.
    received_text: Option<(DateTime<Utc>, String)>,
}

impl RawWindow {
    /// A window that starts with `first` (added separately).
    pub fn new(first: &Record) -> Self {
        Self {
            first_no: first.no,
            first_received: first.received,
            bodies: Default::default(),
            bytes: 0,
            received_text: None,
        }
    }

    pub fn add(&mut self, device: &DeviceId, record: &Record) {
        if self
            .received_text
            .as_ref()
            .is_none_or(|(t, _)| *t != record.received)
        {
            self.received_text = Some((record.received, record.received.to_rfc3339()));
        }
        let received = self.received_text.as_ref().map_or("", |(_, s)| s.as_str());
        let body = match self.bodies.get_mut(device) {
            Some(body) => {
                body.extend_from_slice(b",\n");
                body
            }
            None => self
                .bodies
                .entry(device.clone())
                .or_insert_with(|| vec![b'[']),
        };
        let before = body.len();
        body.extend_from_slice(b"{\"received_at\":\"");
        // RFC 3339 needs no JSON escaping.
        body.extend_from_slice(received.as_bytes());
        body.extend_from_slice(b"\",\"topic\":");
        let _ = serde_json::to_writer(&mut *body, &record.topic);
        body.extend_from_slice(b",\"payload\":");
        body.extend_from_slice(&record.payload);
        body.push(b'}');
        self.bytes += body.len() - before;
    }

    /// Bytes gathered so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// `(key, JSON array)` per device.
    pub fn finish(self) -> Vec<(String, Vec<u8>)> {
        let (first_no, first_received) = (self.first_no, self.first_received);
        let mut objects: Vec<(String, Vec<u8>)> = self
            .bodies
            .into_iter()
            .map(|(device, mut body)| {
                body.extend_from_slice(b"]\n");
                (raw_object_key(&device, first_no, first_received), body)
            })
            .collect();
        objects.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        objects
    }
}

/// Builds the raw objects of a window at once, for tests (see [`RawWindow`]).
#[cfg(test)]
pub fn raw_objects(window: &[(DeviceId, &Record)]) -> Vec<(String, Vec<u8>)> {
    let Some(first) = window.first().map(|(_, r)| *r) else {
        return Vec::new();
    };
    let mut raw = RawWindow::new(first);
    for (device, record) in window {
        raw.add(device, record);
    }
    raw.finish()
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
        for key in ["../etc/passwd", "/abs", "a/../../b", ""] {
            assert!(
                ObjectStore::path(Path::new("/tmp/x"), key).is_err(),
                "{key}"
            );
        }
    }
}
