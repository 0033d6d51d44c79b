//! The lake as DuckDB reads it: local files. With the archive on local disk the models read the
//! lake's own files in place; with it on S3/MinIO each file is fetched once into a local copy
//! (`analytics.work_dir/lake/`, same keys), which also keeps the silver files a run writes, so
//! the next gold run reads them without fetching them back.
//!
//! (DuckDB's httpfs would read S3 directly, but the `duckdb` crate builds httpfs only from a
//! duckdb-rs source checkout with the C++ sources and OpenSSL through CMake — not from the
//! crate as published; the copy costs one GET per file, once.)

use std::path::{Path, PathBuf};

use crate::stores::objects::{ObjectError, ObjectStore};

#[derive(Debug, Clone)]
pub struct LakeFiles {
    objects: ObjectStore,
    /// The local copy, when the store is not a local directory.
    copy: Option<PathBuf>,
}

impl LakeFiles {
    pub fn new(objects: ObjectStore, work_dir: &Path) -> Self {
        let copy = objects
            .local_path("lake")
            .is_none()
            .then(|| work_dir.join("lake"));
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
        let path = copy.join(crate::stores::objects::checked_key(key)?);
        if tokio::fs::metadata(&path)
            .await
            .is_ok_and(|m| m.len() == size)
        {
            return Ok(Some(path));
        }
        let Some(bytes) = self.objects.get(key).await? else {
            return Ok(None);
        };
        write_atomically(&path, &bytes).await?;
        Ok(Some(path))
    }

    /// Stores a file a model wrote under `key`, and keeps it in the local copy.
    pub async fn store(&self, key: &str, file: &Path) -> Result<(), ObjectError> {
        let bytes = tokio::fs::read(file).await?;
        if let Some(copy) = &self.copy {
            write_atomically(
                &copy.join(crate::stores::objects::checked_key(key)?),
                &bytes,
            )
            .await?;
        }
        self.objects.put(key, bytes).await
    }

    /// Drops the local copy of an object that left the lake.
    pub async fn forget(&self, key: &str) {
        if let (Some(copy), Ok(relative)) = (&self.copy, crate::stores::objects::checked_key(key)) {
            let _ = tokio::fs::remove_file(copy.join(relative)).await;
        }
    }
}

impl LakeFiles {
    /// Drops the local copy's date partitions of `prefixes` older than `before`: the lake keeps
    /// them, and a run over those dates fetches them again.
    pub async fn prune(
        &self,
        prefixes: &[&str],
        before: chrono::NaiveDate,
    ) -> Result<(), std::io::Error> {
        let Some(copy) = &self.copy else {
            return Ok(());
        };
        for prefix in prefixes {
            let mut entries = match tokio::fs::read_dir(copy.join(prefix)).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            while let Some(entry) = entries.next_entry().await? {
                let name = entry.file_name().to_string_lossy().into_owned();
                let old = name
                    .strip_prefix("date=")
                    .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                    .is_some_and(|d| d < before);
                if old {
                    tokio::fs::remove_dir_all(entry.path()).await?;
                }
            }
        }
        Ok(())
    }
}

async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), std::io::Error> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    let part = path.with_extension("part");
    tokio::fs::write(&part, bytes).await?;
    tokio::fs::rename(&part, path).await
}
