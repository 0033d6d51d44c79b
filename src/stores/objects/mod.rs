//! The object store behind the raw archive and the Parquet lake: a local directory or an S3 /
//! MinIO bucket, behind one [`ObjectBackend`] trait. [`ObjectStore`] adds what both share: keys
//! checked once, writes many at a time, and listings newest first by date partition.

mod local;
mod pinned;
mod s3;

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

pub use local::LocalStore;
pub use s3::S3Store;

use crate::configuration::{ArchiveBackend, Settings};

/// An object in the archive, as `GET /api/devices/{id}/raw-data` lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArchiveObject {
    /// The object key, relative to the bucket (or archive directory).
    pub filename: String,
    pub size: u64,
    pub last_modified: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("archive I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid object name {0:?}")]
    InvalidKey(String),
    /// The store refuses this object (too large, a name it does not take).
    #[error("S3 refused the object: {0}")]
    Refused(String),
    /// The store refuses devicehub (credentials, permissions, a missing bucket).
    #[error("S3 denied access: {0}")]
    Denied(String),
    #[error("S3: {0}")]
    S3(String),
}

impl ObjectError {
    /// The object can never be written as it is.
    pub fn is_refused(&self) -> bool {
        match self {
            ObjectError::InvalidKey(_) | ObjectError::Refused(_) => true,
            ObjectError::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::InvalidFilename | std::io::ErrorKind::FileTooLarge
            ),
            _ => false,
        }
    }

    /// The store refuses devicehub itself: a matter of configuration.
    pub fn is_denied(&self) -> bool {
        match self {
            ObjectError::Denied(_) => true,
            ObjectError::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ),
            _ => false,
        }
    }
}

/// Objects written together, as `(key, bytes)`.
pub type Objects = Vec<(String, Vec<u8>)>;

/// Objects that could not be written, each with why.
pub type Failed = Vec<(String, Vec<u8>, ObjectError)>;

/// One place objects live. Keys reach a backend already checked ([`checked_key`]).
#[async_trait]
pub trait ObjectBackend: Send + Sync + std::fmt::Debug {
    /// Makes the store writable: creates the directory, or the bucket when it is missing.
    async fn prepare(&self) -> Result<(), ObjectError>;
    /// Whether the store answers (for `/readyz`).
    async fn check(&self) -> Result<(), ObjectError>;
    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectError>;
    /// Writes many objects; returns those that could not be written, each with why. By default
    /// sixteen at a time.
    async fn put_all(&self, objects: Objects) -> Failed {
        use futures_util::StreamExt;
        futures_util::stream::iter(objects)
            .map(|(key, bytes)| async move {
                let result = self.put(&key, bytes.clone()).await;
                (key, bytes, result)
            })
            .buffer_unordered(16)
            .filter_map(|(key, bytes, result)| async move { result.err().map(|e| (key, bytes, e)) })
            .collect()
            .await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError>;
    /// Removes `key`; a missing object is no error.
    async fn delete(&self, key: &str) -> Result<(), ObjectError>;
    /// Where the object lives on this machine's disk, for a store that is a directory.
    fn local_path(&self, _key: &str) -> Option<PathBuf> {
        None
    }
    /// The sub-folders right below `prefix` (which ends with `/`), each ending with `/`.
    async fn folders(&self, prefix: &str) -> Result<Vec<String>, ObjectError>;
    /// Every object whose key starts with `prefix`, in no particular order.
    async fn list_all(&self, prefix: &str) -> Result<Vec<ArchiveObject>, ObjectError>;
    /// Up to `max` objects whose key starts with `prefix`, and whether there are more. By
    /// default from the whole listing.
    async fn list_some(
        &self,
        prefix: &str,
        max: usize,
    ) -> Result<(Vec<ArchiveObject>, bool), ObjectError> {
        let mut all = self.list_all(prefix).await?;
        let more = all.len() > max;
        all.truncate(max);
        Ok((all, more))
    }
}

/// A key as a relative path of plain names only: nothing that escapes the archive.
pub fn checked_key(key: &str) -> Result<&Path, ObjectError> {
    let relative = Path::new(key);
    if key.is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(ObjectError::InvalidKey(key.to_owned()));
    }
    Ok(relative)
}

/// The media type of an object, by its name.
pub fn content_type(key: &str) -> &'static str {
    if key.ends_with(".parquet") {
        "application/vnd.apache.parquet"
    } else if key.ends_with(".jpg") {
        "image/jpeg"
    } else {
        "application/json"
    }
}

/// The archive's store, shared by the archive sink and the raw-data API.
#[derive(Debug, Clone)]
pub struct ObjectStore(Arc<dyn ObjectBackend>);

impl ObjectStore {
    /// The store the settings name; for S3 the client only (see [`ObjectStore::prepare`]).
    pub fn from_settings(settings: &Settings) -> Result<Self, ObjectError> {
        Ok(match settings.archive.backend {
            ArchiveBackend::Local => Self::local(settings.archive.dir.clone()),
            ArchiveBackend::S3 => Self::new(S3Store::new(&settings.s3)?),
        })
    }

    pub fn new(backend: impl ObjectBackend + 'static) -> Self {
        Self(Arc::new(backend))
    }

    /// A local directory.
    pub fn local(root: PathBuf) -> Self {
        Self::new(LocalStore::new(root))
    }

    pub async fn prepare(&self) -> Result<(), ObjectError> {
        self.0.prepare().await
    }

    pub async fn check(&self) -> Result<(), ObjectError> {
        self.0.check().await
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectError> {
        checked_key(key)?;
        self.0.put(key, bytes).await
    }

    /// Writes many objects; returns those that could not be written, each with why.
    pub async fn put_all(&self, objects: Objects) -> Failed {
        let (objects, invalid): (Objects, Objects) = objects
            .into_iter()
            .partition(|(key, _)| checked_key(key).is_ok());
        let mut failed = self.0.put_all(objects).await;
        failed.extend(
            invalid
                .into_iter()
                .map(|(key, bytes)| (key.clone(), bytes, ObjectError::InvalidKey(key))),
        );
        failed
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        checked_key(key)?;
        self.0.get(key).await
    }

    /// Removes `key` (a missing object is no error).
    pub async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        checked_key(key)?;
        self.0.delete(key).await
    }

    /// Every object whose key starts with `prefix`, in no particular order.
    pub async fn list_all(&self, prefix: &str) -> Result<Vec<ArchiveObject>, ObjectError> {
        self.0.list_all(prefix).await
    }

    /// The sub-folders right below `prefix` (which ends with `/`), each ending with `/`.
    pub async fn folders(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        self.0.folders(prefix).await
    }

    /// The object's file when the store is a local directory (DuckDB reads it in place).
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        checked_key(key).ok()?;
        self.0.local_path(key)
    }

    /// Up to `limit` objects whose key starts with `prefix`, newest (largest) key first.
    ///
    /// Keys are time-partitioned (`.../date=YYYY-MM-DD/YYYYMMDDTHHMMSSZ-...`), so when `prefix`
    /// names a folder its `date=` partitions are read newest first, and a day with more objects
    /// than one listing page hour by hour, newest first; reading stops once `limit` objects are
    /// found. A listing costs a device's newest days or hours, not its whole history.
    pub async fn list(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<ArchiveObject>, ObjectError> {
        let mut out = Vec::new();
        if prefix.ends_with('/') {
            let mut folders = self.0.folders(prefix).await?;
            folders.retain(|f| f[prefix.len()..].starts_with("date="));
            folders.sort_unstable_by(|a, b| b.cmp(a));
            for folder in &folders {
                out.extend(self.newest_of_day(folder, limit - out.len()).await?);
                if out.len() >= limit {
                    break;
                }
            }
            if !folders.is_empty() {
                out.truncate(limit);
                return Ok(out);
            }
        }
        out = self.0.list_all(prefix).await?;
        out.sort_by(|a, b| b.filename.cmp(&a.filename));
        out.truncate(limit);
        Ok(out)
    }

    /// Up to `limit` of the newest objects of one `.../date=YYYY-MM-DD/` folder.
    async fn newest_of_day(
        &self,
        folder: &str,
        limit: usize,
    ) -> Result<Vec<ArchiveObject>, ObjectError> {
        let (mut objects, more) = self.0.list_some(folder, LISTING_PAGE).await?;
        let compact: String = folder
            .trim_end_matches('/')
            .rsplit("date=")
            .next()
            .unwrap_or_default()
            .replace('-', "");
        if more && compact.len() == 8 {
            objects.clear();
            for hour in (0..24).rev() {
                let mut of_hour = self
                    .0
                    .list_all(&format!("{folder}{compact}T{hour:02}"))
                    .await?;
                of_hour.sort_by(|a, b| b.filename.cmp(&a.filename));
                objects.extend(of_hour);
                if objects.len() >= limit {
                    break;
                }
            }
        } else {
            objects.sort_by(|a, b| b.filename.cmp(&a.filename));
        }
        objects.truncate(limit);
        Ok(objects)
    }
}

/// Objects one listing request returns (S3's page).
const LISTING_PAGE: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_the_archive_are_refused() {
        for key in ["../etc/passwd", "/abs", "a/../../b", ""] {
            assert!(checked_key(key).is_err(), "{key}");
        }
        assert!(checked_key("a/date=2026-02-12/x.json").is_ok());
    }
}
