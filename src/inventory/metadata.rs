//! Device metadata: what the owner knows of each host on the network, from a CSV file with
//! homebot's header `mac_address,device_type,owner,location` and an optional `name` column
//! (`config/device_metadata.csv`, `inventory.metadata_csv`). A malformed file stops start-up with
//! its line number; a change to the file is picked up while running ([`MetadataFile::watch`]),
//! and a malformed change is logged and ignored (the last good contents stay).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::domain::Mac;

/// One host's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceMetadata {
    pub mac: Mac,
    pub device_type: String,
    pub owner: String,
    pub location: String,
    pub name: Option<String>,
}

/// The file's contents, by MAC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    by_mac: HashMap<Mac, DeviceMetadata>,
}

impl Metadata {
    /// Appends every entry to the DuckDB table `table`, whose columns are
    /// `mac, device_type, owner, location, name` (the inventory's and the analytics' own).
    pub fn append_to(&self, db: &duckdb::Connection, table: &str) -> Result<(), duckdb::Error> {
        let mut appender = db.appender(table)?;
        for m in self.iter() {
            appender.append_row(duckdb::params![
                m.mac.to_string(),
                m.device_type,
                m.owner,
                m.location,
                m.name
            ])?;
        }
        appender.flush()
    }

    pub fn get(&self, mac: &Mac) -> Option<&DeviceMetadata> {
        self.by_mac.get(mac)
    }

    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &DeviceMetadata> {
        self.by_mac.values()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path}, line {line}: {message}")]
    Line {
        path: String,
        line: u64,
        message: String,
    },
}

const REQUIRED: [&str; 4] = ["mac_address", "device_type", "owner", "location"];

/// Parses the file's text; `path` names it in errors. A row it cannot use refuses the whole
/// file (the inventory keeps its last good one), so a typo never drops a device silently.
pub fn parse(path: &str, text: &str) -> Result<Metadata, MetadataError> {
    let (metadata, mut problems) = parse_rows(path, text)?;
    match problems.is_empty() {
        true => Ok(metadata),
        false => Err(problems.remove(0)),
    }
}

/// Parses the file's text, row by row: the rows it can use, and each row it cannot with its
/// line (what `devicehub doctor` lists). An error is a file it cannot read at all (its header).
pub fn parse_rows(path: &str, text: &str) -> Result<(Metadata, Vec<MetadataError>), MetadataError> {
    let error = |line: u64, message: String| MetadataError::Line {
        path: path.to_owned(),
        line,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| error(1, e.to_string()))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let mut columns = [0usize; 4];
    for (i, name) in REQUIRED.iter().enumerate() {
        columns[i] = column(name).ok_or_else(|| {
            error(
                1,
                format!("the header needs {}; optional: name", REQUIRED.join(",")),
            )
        })?;
    }
    let name_column = column("name");
    let mut by_mac = HashMap::new();
    let mut problems = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(error(line, e.to_string()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        let field = |i: usize| record.get(i).unwrap_or_default().to_owned();
        let row = || -> Result<DeviceMetadata, String> {
            let raw_mac = field(columns[0]);
            let mac = Mac::parse(&raw_mac).ok_or(format!("{raw_mac:?} is not a MAC address"))?;
            if let Some(i) = record.iter().position(|t| t.chars().any(char::is_control)) {
                return Err(format!("column {} holds a control character", i + 1));
            }
            let device_type = field(columns[1]);
            if device_type.is_empty() {
                return Err("device_type is empty".into());
            }
            Ok(DeviceMetadata {
                mac,
                device_type,
                owner: field(columns[2]),
                location: field(columns[3]),
                name: name_column.map(field).filter(|n| !n.is_empty()),
            })
        };
        match row() {
            Ok(entry) if by_mac.contains_key(&entry.mac) => {
                problems.push(error(line, format!("{} is listed twice", entry.mac)));
            }
            Ok(entry) => {
                by_mac.insert(entry.mac, entry);
            }
            Err(message) => problems.push(error(line, message)),
        }
    }
    Ok((Metadata { by_mac }, problems))
}

/// The metadata file, loaded, and reloaded when it changes.
#[derive(Clone)]
pub struct MetadataFile {
    path: PathBuf,
    current: Arc<RwLock<Arc<Metadata>>>,
    modified: Arc<RwLock<Option<SystemTime>>>,
}

impl MetadataFile {
    /// Loads `path`: an error names the line of a malformed file. A missing file is an empty
    /// inventory of metadata (every host `unknown`), with a warning.
    pub fn load(path: &Path) -> Result<Self, MetadataError> {
        let file = Self {
            path: path.to_owned(),
            current: Default::default(),
            modified: Default::default(),
        };
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "no device metadata file; every host is unknown");
            }
            _ => file.reload()?,
        }
        Ok(file)
    }

    pub fn current(&self) -> Arc<Metadata> {
        self.current.read().map(|m| m.clone()).unwrap_or_default()
    }

    fn reload(&self) -> Result<(), MetadataError> {
        let display = self.path.display().to_string();
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let text = std::fs::read_to_string(&self.path).map_err(|error| MetadataError::Read {
            path: display.clone(),
            error,
        })?;
        let metadata = parse(&display, &text)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(metadata);
        }
        if let Ok(mut m) = self.modified.write() {
            *m = modified;
        }
        Ok(())
    }

    /// Checks the file every `every` and reloads it when its modification time changed.
    pub async fn watch(self, every: Duration, shutdown: CancellationToken) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            let modified = std::fs::metadata(&self.path)
                .and_then(|m| m.modified())
                .ok();
            let known = self.modified.read().ok().and_then(|m| *m);
            if modified.is_none() || modified == known {
                continue;
            }
            match self.reload() {
                Ok(()) => {
                    tracing::info!(path = %self.path.display(), devices = self.current().len(),
                    "device metadata reloaded")
                }
                Err(e) => {
                    // Not again until the file changes once more.
                    if let Ok(mut m) = self.modified.write() {
                        *m = modified;
                    }
                    tracing::error!(error = %e, "device metadata not reloaded; keeping the last good one");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homebots_file_parses_with_any_mac_spelling_and_an_optional_name() {
        let text = "mac_address,device_type,owner,location,name\n\
                    aa-bb-cc-dd-ee-01,phone,anna,home,Anna's phone\n\
                    # a comment\n\
                    AABBCCDDEE02, shelly , house, kitchen,\n";
        let m = parse("m.csv", text).unwrap();
        assert_eq!(m.len(), 2);
        let phone = m.get(&Mac::parse("AA:BB:CC:DD:EE:01").unwrap()).unwrap();
        assert_eq!(phone.name.as_deref(), Some("Anna's phone"));
        let relay = m.get(&Mac::parse("aa:bb:cc:dd:ee:02").unwrap()).unwrap();
        assert_eq!(
            (relay.device_type.as_str(), relay.name.as_ref()),
            ("shelly", None)
        );
        // homebot's four columns, without name.
        let m = parse(
            "m.csv",
            "mac_address,device_type,owner,location\n11:22:33:44:55:66,tv,family,living room\n",
        )
        .unwrap();
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn a_malformed_file_names_its_line() {
        for (text, line, says) in [
            ("mac,type\n", 1, "header"),
            ("mac_address,device_type,owner,location\nnot-a-mac,tv,a,b\n", 2, "not a MAC"),
            ("mac_address,device_type,owner,location\n11:22:33:44:55:66,tv,a,b\n11-22-33-44-55-66,tv,a,b\n", 3, "twice"),
            ("mac_address,device_type,owner,location\n11:22:33:44:55:66,tv,a\n", 2, "field"),
            ("mac_address,device_type,owner,location\n11:22:33:44:55:66,,a,b\n", 2, "empty"),
        ] {
            let e = parse("m.csv", text).unwrap_err().to_string();
            assert!(e.contains(&format!("line {line}")), "{e}");
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn every_row_it_cannot_use_is_listed_with_its_line_and_the_rest_kept() {
        let text = "mac_address,device_type,owner,location\n\
                    11:22:33:44:55:66,tv,a,b\n\
                    nope,tv,a,b\n\
                    11:22:33:44:55:67,,a,b\n\
                    11:22:33:44:55:68,lamp,a,b\n";
        let (metadata, problems) = parse_rows("m.csv", text).unwrap();
        assert_eq!(metadata.len(), 2);
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].contains("line 3") && lines[0].contains("not a MAC"),
            "{lines:?}"
        );
        assert!(
            lines[1].contains("line 4") && lines[1].contains("empty"),
            "{lines:?}"
        );
    }
}
