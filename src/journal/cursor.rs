//! Sink positions kept in small files next to the journal.

use std::fs;
use std::io;
use std::path::PathBuf;

use super::format::write_atomically;
use super::Journal;

/// A sink position kept in a small file next to the journal.
#[derive(Clone)]
pub struct FileCursor {
    path: PathBuf,
}

impl FileCursor {
    pub fn new(journal: &Journal, name: &str) -> Self {
        Self {
            path: journal.dir().join(format!("{name}.cursor")),
        }
    }

    pub fn load(&self) -> io::Result<u64> {
        match fs::read(&self.path) {
            // A cursor file the disk damaged must not stop the sink for good: it starts over
            // from the journal's oldest record (and the driver alerts that it did).
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).trim().parse().unwrap_or_else(|_| {
                let s = String::from_utf8_lossy(&bytes);
                tracing::error!(path = %self.path.display(), content = %s.escape_debug(),
                    "a sink cursor file is damaged; the sink starts from the journal's oldest record");
                0
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    pub fn store(&self, done: u64) -> io::Result<()> {
        write_atomically(&self.path, done.to_string().as_bytes())
    }
}
