//! The inventory: an in-memory DuckDB database holding the router's poll snapshots of the last
//! `inventory.history_days` days (tables `leases` and `wifi`, the very Parquet files the Mikrotik
//! poller keeps in the lake) and the device metadata file (table `metadata`), and the
//! `inventory` view that joins them: every host of the latest lease and Wi-Fi snapshots with
//! its owner's metadata.
//!
//! The lake is the source of truth, so any process can answer for the inventory (an API replica
//! as well as the pollers' process): [`Inventory::sync`] loads the snapshot files it has not
//! loaded yet, listing only the date partitions from the last one it loaded on. A process
//! syncs at most once a second, on demand, and right after its own poll.
//!
//! The DuckDB connection is used from blocking threads (`spawn_blocking`), one query at a time.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use duckdb::{params_from_iter, Connection};

use super::metadata::{Metadata, MetadataFile};
use super::snapshots::{LEASES_PREFIX, WIFI_PREFIX};
use crate::stores::objects::ObjectStore;

/// How often a request may make the inventory look for new snapshots.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// Snapshot files read into DuckDB by one statement.
const FILES_PER_LOAD: usize = 256;

const SCHEMA: &str = r"
SET threads = 2;
SET memory_limit = '512MB';
CREATE TABLE leases (
    polled_at TIMESTAMPTZ NOT NULL, router VARCHAR NOT NULL, lease_id VARCHAR NOT NULL,
    mac VARCHAR NOT NULL, address VARCHAR, client_id VARCHAR, host_name VARCHAR, status VARCHAR,
    dynamic BOOLEAN, disabled BOOLEAN, blocked BOOLEAN, server VARCHAR, last_seen TIMESTAMPTZ,
    expires_at TIMESTAMPTZ, active_address VARCHAR, comment VARCHAR);
CREATE TABLE wifi (
    polled_at TIMESTAMPTZ NOT NULL, router VARCHAR NOT NULL, mac VARCHAR NOT NULL,
    interface VARCHAR, signal_dbm INTEGER, uptime_s UBIGINT);
CREATE TABLE metadata (
    mac VARCHAR PRIMARY KEY, device_type VARCHAR NOT NULL, owner VARCHAR, location VARCHAR,
    name VARCHAR);
-- Each router's newest poll.
CREATE VIEW latest_leases AS
    SELECT * FROM leases QUALIFY polled_at = max(polled_at) OVER (PARTITION BY router);
CREATE VIEW latest_wifi AS
    SELECT * FROM wifi QUALIFY polled_at = max(polled_at) OVER (PARTITION BY router);
-- Every host of the newest snapshots: leased, on Wi-Fi, or both.
CREATE VIEW inventory AS
WITH l AS (
    SELECT * FROM latest_leases
    QUALIFY row_number() OVER (PARTITION BY mac ORDER BY polled_at DESC, status = 'bound' DESC) = 1),
w AS (
    SELECT mac, max(polled_at) AS polled_at, min(interface) AS interface,
           max(signal_dbm) AS signal_dbm
    FROM latest_wifi GROUP BY mac),
hosts AS (SELECT mac FROM l UNION SELECT mac FROM w)
SELECT h.mac,
       coalesce(l.active_address, l.address) AS ip,
       l.host_name,
       m.name,
       m.owner,
       m.location,
       coalesce(m.device_type, 'unknown') AS device_type,
       l.status AS lease_status,
       greatest(l.last_seen, w.polled_at) AS last_seen,
       w.mac IS NOT NULL AS present,
       m.mac IS NOT NULL AS known,
       w.interface AS wifi_interface,
       w.signal_dbm
FROM hosts h LEFT JOIN l USING (mac) LEFT JOIN w USING (mac) LEFT JOIN metadata m USING (mac);
";

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("the inventory database: {0}")]
    Duck(#[from] duckdb::Error),
    #[error("the lake: {0}")]
    Lake(#[from] crate::stores::objects::ObjectError),
    #[error("a snapshot file: {0}")]
    File(#[from] std::io::Error),
    #[error("the inventory task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Which snapshot files are loaded, per table.
#[derive(Debug, Default)]
struct Loaded {
    /// The newest key loaded, per prefix (keys sort by poll time).
    newest: BTreeMap<&'static str, String>,
    metadata: Option<Arc<Metadata>>,
    synced_at: Option<Instant>,
    /// The oldest day kept; rows before it are deleted once a day.
    pruned_before: Option<NaiveDate>,
}

struct Inner {
    db: Mutex<Connection>,
    objects: ObjectStore,
    metadata: MetadataFile,
    history_days: u32,
    loaded: tokio::sync::Mutex<Loaded>,
    scratch: PathBuf,
}

/// The DuckDB inventory; cheap to clone.
#[derive(Clone)]
pub struct Inventory(Arc<Inner>);

impl Inventory {
    pub fn new(
        objects: ObjectStore,
        metadata: MetadataFile,
        history_days: u32,
    ) -> Result<Self, InventoryError> {
        let db = Connection::open_in_memory()?;
        db.execute_batch(SCHEMA)?;
        let scratch = std::env::temp_dir().join(format!(
            "devicehub-inventory-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        Ok(Self(Arc::new(Inner {
            db: Mutex::new(db),
            objects,
            metadata,
            history_days: history_days.max(1),
            loaded: Default::default(),
            scratch,
        })))
    }

    pub fn metadata(&self) -> &MetadataFile {
        &self.0.metadata
    }

    /// Runs `f` on the connection in a blocking thread.
    pub(super) async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, duckdb::Error> + Send + 'static,
    ) -> Result<T, InventoryError> {
        let inner = self.0.clone();
        let result = tokio::task::spawn_blocking(move || {
            let db = inner.db.lock().unwrap_or_else(|p| p.into_inner());
            f(&db)
        })
        .await?;
        Ok(result?)
    }

    /// Syncs unless it did within the last second.
    pub async fn sync_if_stale(&self) -> Result<(), InventoryError> {
        let fresh = {
            let loaded = self.0.loaded.lock().await;
            loaded.synced_at.is_some_and(|t| t.elapsed() < SYNC_EVERY)
        };
        if fresh {
            return Ok(());
        }
        self.sync().await
    }

    /// Loads the snapshot files of the lake not loaded yet, the metadata file when it changed,
    /// and drops rows older than the history kept.
    pub async fn sync(&self) -> Result<(), InventoryError> {
        let mut loaded = self.0.loaded.lock().await;
        let today = Utc::now().date_naive();
        let oldest = today - chrono::Days::new(u64::from(self.0.history_days - 1));
        let metadata = self.0.metadata.current();
        if !loaded
            .metadata
            .as_ref()
            .is_some_and(|m| Arc::ptr_eq(m, &metadata))
        {
            self.load_metadata(metadata.clone()).await?;
            loaded.metadata = Some(metadata);
        }
        for (prefix, table) in [(LEASES_PREFIX, "leases"), (WIFI_PREFIX, "wifi")] {
            let newest = loaded.newest.get(prefix).cloned();
            let keys = self.new_keys(prefix, newest.as_deref(), oldest).await?;
            for chunk in keys.chunks(FILES_PER_LOAD) {
                self.load_files(table, chunk).await?;
                loaded.newest.insert(prefix, chunk[chunk.len() - 1].clone());
            }
        }
        if loaded.pruned_before != Some(oldest) {
            let before = oldest.format("%Y-%m-%d").to_string();
            self.with_db(move |db| {
                for table in ["leases", "wifi"] {
                    db.execute(
                        &format!("DELETE FROM {table} WHERE polled_at < CAST(? AS DATE)"),
                        [&before],
                    )?;
                }
                Ok(())
            })
            .await?;
            loaded.pruned_before = Some(oldest);
        }
        loaded.synced_at = Some(Instant::now());
        Ok(())
    }

    /// The keys of `prefix` newer than `newest`, oldest first, from the date partitions of
    /// `newest`'s day (or `oldest`) to today.
    async fn new_keys(
        &self,
        prefix: &str,
        newest: Option<&str>,
        oldest: NaiveDate,
    ) -> Result<Vec<String>, InventoryError> {
        let from = newest
            .and_then(date_of_key)
            .map_or(oldest, |d| d.max(oldest));
        let today = Utc::now().date_naive();
        let mut keys = Vec::new();
        let mut day = from;
        while day <= today {
            let folder = format!("{prefix}/date={}/", day.format("%Y-%m-%d"));
            let mut found: Vec<String> = self
                .0
                .objects
                .list_all(&folder)
                .await?
                .into_iter()
                .map(|o| o.filename)
                .filter(|k| k.ends_with(".parquet") && newest.is_none_or(|n| k.as_str() > n))
                .collect();
            found.sort_unstable();
            keys.extend(found);
            day = day.succ_opt().unwrap_or(today + chrono::Days::new(1));
        }
        Ok(keys)
    }

    /// Reads snapshot files into `table`: each is fetched from the lake into a scratch file
    /// (the lake may be S3) and the lot inserted by one `read_parquet`.
    async fn load_files(&self, table: &'static str, keys: &[String]) -> Result<(), InventoryError> {
        let dir = self.0.scratch.join(table);
        tokio::fs::create_dir_all(&dir).await?;
        let mut paths = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let Some(bytes) = self.0.objects.get(key).await? else {
                continue; // deleted since the listing
            };
            let path = dir.join(format!("{i}.parquet"));
            tokio::fs::write(&path, bytes).await?;
            paths.push(path.to_string_lossy().into_owned());
        }
        if paths.is_empty() {
            return Ok(());
        }
        let cleanup = paths.clone();
        let result = self
            .with_db(move |db| {
                let list = vec!["?"; paths.len()].join(", ");
                db.execute(
                    &format!(
                        "INSERT INTO {table} BY NAME SELECT * FROM read_parquet([{list}], union_by_name = true)"
                    ),
                    params_from_iter(paths.iter()),
                )
                .map(drop)
            })
            .await;
        for path in cleanup {
            let _ = tokio::fs::remove_file(path).await;
        }
        result
    }

    async fn load_metadata(&self, metadata: Arc<Metadata>) -> Result<(), InventoryError> {
        self.with_db(move |db| {
            db.execute("DELETE FROM metadata", [])?;
            metadata.append_to(db, "metadata")
        })
        .await
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// The day of a snapshot key's `date=` partition.
fn date_of_key(key: &str) -> Option<NaiveDate> {
    let at = key.find("/date=")? + "/date=".len();
    NaiveDate::parse_from_str(key.get(at..at + 10)?, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_date_is_its_partition() {
        assert_eq!(
            date_of_key("lake/leases/date=2026-12-01/poll-20261201T101010.000Z.parquet"),
            NaiveDate::from_ymd_opt(2026, 12, 1)
        );
        assert_eq!(date_of_key("lake/leases/poll.parquet"), None);
    }
}
