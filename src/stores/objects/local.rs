//! Objects as files under a directory: the archive without an S3 server.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{checked_key, ArchiveObject, Failed, ObjectBackend, ObjectError, Objects};

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, key: &str) -> Result<PathBuf, ObjectError> {
        Ok(self.root.join(checked_key(key)?))
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ObjectError> + Send + 'static,
) -> Result<T, ObjectError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(std::io::Error::other)?
}

#[async_trait]
impl ObjectBackend for LocalStore {
    async fn prepare(&self) -> Result<(), ObjectError> {
        Ok(tokio::fs::create_dir_all(&self.root).await?)
    }

    async fn check(&self) -> Result<(), ObjectError> {
        self.prepare().await
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path(key).ok()
    }

    async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), ObjectError> {
        let path = self.path(key)?;
        blocking(move || Ok(write_file(&path, &bytes)?)).await
    }

    /// All in one blocking task: a window's objects are many small files.
    async fn put_all(&self, objects: Objects) -> Failed {
        let store = self.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut failed = Vec::new();
            for (key, bytes) in objects {
                let result = store
                    .path(&key)
                    .and_then(|path| Ok(write_file(&path, &bytes)?));
                if let Err(e) = result {
                    failed.push((key, bytes, e));
                }
            }
            failed
        })
        .await;
        // The objects went with the task: should it panic, so does the caller (the archive sink,
        // which the supervisor restarts to write the window again from the journal).
        match written {
            Ok(failed) => failed,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("the archive's write task was cancelled: {e}"),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        match tokio::fs::remove_file(self.path(key)?).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn folders(&self, prefix: &str) -> Result<Vec<String>, ObjectError> {
        let dir = self.path(prefix.trim_end_matches('/'))?;
        let prefix = prefix.to_owned();
        blocking(move || {
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
    }

    async fn list_all(&self, prefix: &str) -> Result<Vec<ArchiveObject>, ObjectError> {
        // Walk the deepest folder the prefix names, and filter by the rest.
        let folder = match prefix.rfind('/') {
            Some(i) => self.path(&prefix[..i])?,
            None => self.root.clone(),
        };
        let (root, prefix) = (self.root.clone(), prefix.to_owned());
        blocking(move || {
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
                        .is_some_and(|e| e == "json" || e == "parquet" || e == "jpg")
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
