//! The lake as DuckDB reads it: local files. With the archive on local disk the models read the
//! lake's own files in place; with it on S3/MinIO each file is fetched once into a local copy
//! (`analytics.work_dir/lake/`, a local object store with the same keys), which also keeps the
//! silver files a run writes, so the next gold run reads them without fetching them back.
//!
//! (DuckDB's httpfs would read S3 directly, but the `duckdb` crate builds httpfs only from a
//! duckdb-rs source checkout with the C++ sources and OpenSSL through CMake — not from the
//! crate as published; the copy costs one GET per file, once.)

use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::partition_date;
use crate::stores::objects::{ObjectError, ObjectStore};

#[derive(Debug, Clone)]
pub struct LakeFiles {
    objects: ObjectStore,
    /// The local copy, when the store is not a local directory.
    copy: Option<ObjectStore>,
}

impl LakeFiles {
    pub fn new(objects: ObjectStore, work_dir: &Path) -> Self {
        let copy = objects
            .local_path("lake")
            .is_none()
            .then(|| ObjectStore::local(work_dir.join("lake")));
        Self { objects, copy }
    }

    pub fn objects(&self) -> &ObjectStore {
        &self.objects
    }

    /// A local file with the object's bytes (fetched when the lake is remote and the copy is
    /// missing or of another size); `None` when the object is gone.
    pub async fn local(&self, key: &str, size: u64) -> Result<Option<PathBuf>, ObjectError> {
        let Some(copy) = &self.copy else {
            return Ok(self.objects.local_path(key).filter(|p| p.exists()));
        };
        let path = copy
            .local_path(key)
            .ok_or_else(|| ObjectError::InvalidKey(key.to_owned()))?;
        if tokio::fs::metadata(&path)
            .await
            .is_ok_and(|m| m.len() == size)
        {
            return Ok(Some(path));
        }
        let Some(bytes) = self.objects.get(key).await? else {
            return Ok(None);
        };
        copy.put(key, bytes).await?;
        Ok(Some(path))
    }

    /// Stores a file a model wrote under `key`, and keeps it in the local copy.
    pub async fn store(&self, key: &str, file: &Path) -> Result<(), ObjectError> {
        let bytes = tokio::fs::read(file).await?;
        if let Some(copy) = &self.copy {
            copy.put(key, bytes.clone()).await?;
        }
        self.objects.put(key, bytes).await
    }

    /// Drops the local copy of an object that left the lake.
    pub async fn forget(&self, key: &str) {
        if let Some(path) = self.copy.as_ref().and_then(|c| c.local_path(key)) {
            let _ = tokio::fs::remove_file(path).await;
        }
    }

    /// Drops the local copy's date partitions of `prefixes` older than `before`: the lake keeps
    /// them, and a run over those dates fetches them again.
    pub async fn prune(&self, prefixes: &[String], before: NaiveDate) -> Result<(), ObjectError> {
        let Some(copy) = &self.copy else {
            return Ok(());
        };
        for prefix in prefixes {
            for folder in copy.folders(&format!("{prefix}/")).await? {
                let old = partition_date(&folder).is_some_and(|d| d < before);
                if let (true, Some(path)) = (old, copy.local_path(folder.trim_end_matches('/'))) {
                    tokio::fs::remove_dir_all(path).await?;
                }
            }
        }
        Ok(())
    }
}
