//! Damage found in the journal's files: a record whose checksum or layout is wrong in the middle
//! of a segment (a bad sector, a bit flipped on disk, a file cut short). The readers and the
//! check at open find their way past it to the records after; what they passed over is reported
//! here once, copied aside for inspection (`corrupt/{segment}-{offset}.bin` in the journal's
//! directory), and handed to the collector, which counts it and raises a `journal_corrupt` alert.
//! A range already copied aside by an earlier run is not reported again.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::format::{read_tolerant, write_atomically};

/// At most this much of a damaged range is copied aside.
const KEEP_BYTES: usize = 64 << 20;

/// One damaged range of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub segment: PathBuf,
    /// Where the damage starts in the segment, and how many bytes were passed over.
    pub offset: u64,
    pub bytes: u64,
    /// The record numbers that could not be read (`None`: bytes only, no record lost).
    pub lost: Option<RangeInclusive<u64>>,
    /// The copy of the damaged bytes.
    pub kept_as: PathBuf,
}

impl Damage {
    /// How many records were lost.
    pub fn records(&self) -> u64 {
        self.lost
            .as_ref()
            .map_or(0, |r| r.end().saturating_sub(*r.start()) + 1)
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the journal segment {} is damaged at byte {} ({} bytes passed over",
            self.segment.display(),
            self.offset,
            self.bytes
        )?;
        match &self.lost {
            Some(lost) if lost.start() == lost.end() => {
                write!(f, "; record {} lost", lost.start())?
            }
            Some(lost) => write!(f, "; records {} to {} lost", lost.start(), lost.end())?,
            None => {}
        }
        write!(f, "), copied to {}", self.kept_as.display())
    }
}

/// Where damage is reported. Clones share what has been seen and the receiving end.
#[derive(Clone)]
pub struct DamageLog(Arc<Inner>);

struct Inner {
    dir: PathBuf,
    seen: Mutex<HashSet<(PathBuf, u64)>>,
    tx: mpsc::UnboundedSender<Damage>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Damage>>>,
}

impl DamageLog {
    /// A log for the journal in `dir`.
    pub fn new(dir: &Path) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self(Arc::new(Inner {
            dir: dir.to_owned(),
            seen: Mutex::default(),
            tx,
            rx: Mutex::new(Some(rx)),
        }))
    }

    /// The receiving end, once: what was found before it is taken waits in it.
    pub fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<Damage>> {
        self.0.rx.lock().ok()?.take()
    }

    /// Reports `bytes` damaged bytes at `offset` of `segment` and the records lost with them.
    /// Each range is reported once (every sink's reader passes over the same damage).
    pub(super) fn report(
        &self,
        segment: &Path,
        offset: u64,
        bytes: u64,
        lost: Option<RangeInclusive<u64>>,
    ) {
        let key = (segment.to_owned(), offset);
        let new = self.0.seen.lock().is_ok_and(|mut seen| seen.insert(key));
        if !new {
            return;
        }
        let name = segment
            .file_stem()
            .map_or_else(|| "segment".into(), |s| s.to_string_lossy().into_owned());
        let kept_as = self
            .0
            .dir
            .join("corrupt")
            .join(format!("{name}-{offset}.bin"));
        let damage = Damage {
            segment: segment.to_owned(),
            offset,
            bytes,
            lost,
            kept_as,
        };
        if damage.kept_as.exists() {
            tracing::info!(%damage, "journal: damage reported by an earlier run passed over");
            return;
        }
        if let Err(e) = keep_aside(&damage) {
            tracing::error!(%damage, error = %e, "journal: cannot copy the damaged bytes aside");
        }
        tracing::error!(%damage, "journal: damaged records passed over");
        let _ = self.0.tx.send(damage);
    }
}

fn keep_aside(damage: &Damage) -> io::Result<()> {
    if let Some(dir) = damage.kept_as.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut bytes = read_tolerant(&damage.segment, damage.offset)?;
    bytes.truncate((damage.bytes as usize).min(KEEP_BYTES));
    write_atomically(&damage.kept_as, &bytes)
}
