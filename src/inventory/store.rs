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

use chrono::{DateTime, NaiveDate, Utc};
use duckdb::types::Value as DuckValue;
use duckdb::{params_from_iter, Connection};
use serde::Serialize;
use utoipa::ToSchema;

use super::mac::Mac;
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

const INVENTORY_COLUMNS: &str = "mac, ip, host_name, name, owner, location, device_type, \
    lease_status, epoch_us(last_seen), present, known, wifi_interface, signal_dbm";

/// One host of the inventory (`GET /api/inventory`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Host {
    /// `AA:BB:CC:DD:EE:FF`.
    pub mac: String,
    /// The address the router leased to it (its active address when it differs).
    pub ip: Option<String>,
    /// The host name the client sent in its DHCP request.
    pub host_name: Option<String>,
    /// From the metadata file.
    pub name: Option<String>,
    pub owner: Option<String>,
    pub location: Option<String>,
    /// From the metadata file; `unknown` when the MAC is not in it.
    pub device_type: String,
    /// RouterOS's lease status: `bound`, `waiting`, `offered`, ...
    pub lease_status: Option<String>,
    /// When the router last saw it: the lease's `last-seen`, or the poll that found it on Wi-Fi.
    pub last_seen: Option<DateTime<Utc>>,
    /// On Wi-Fi now (in the newest registration table).
    pub present: bool,
    /// In the metadata file.
    pub known: bool,
    /// The Wi-Fi interface it is registered on, when present.
    pub wifi_interface: Option<String>,
    /// Its signal strength in dBm, when present.
    pub signal_dbm: Option<i32>,
    /// The registered device with this MAC (a Shelly, a camera), if any.
    pub device_id: Option<String>,
}

/// A filter of `GET /api/inventory`; every part optional.
#[derive(Debug, Clone, Default)]
pub struct HostFilter {
    pub device_type: Option<String>,
    pub location: Option<String>,
    pub owner: Option<String>,
    pub known: Option<bool>,
    pub present: Option<bool>,
}

/// A stretch of polls in which a host kept one address and lease status.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AddressSpan {
    pub ip: Option<String>,
    pub lease_status: Option<String>,
    /// The first and the last poll of the stretch.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// A stretch of Wi-Fi polls in which a host was (or was not) registered.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PresenceSpan {
    pub present: bool,
    pub interface: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// One host with its history (`GET /api/inventory/{mac}`), oldest stretch first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HostHistory {
    #[serde(flatten)]
    pub host: Host,
    pub ip_history: Vec<AddressSpan>,
    pub presence_history: Vec<PresenceSpan>,
}

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
    async fn with_db<T: Send + 'static>(
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

    /// The hosts matching `filter`, by MAC.
    pub async fn hosts(&self, filter: HostFilter) -> Result<Vec<Host>, InventoryError> {
        self.with_db(move |db| {
            let mut sql = format!("SELECT {INVENTORY_COLUMNS} FROM inventory WHERE true");
            let mut params: Vec<DuckValue> = Vec::new();
            for (column, value) in [
                ("device_type", filter.device_type),
                ("location", filter.location),
                ("owner", filter.owner),
            ] {
                if let Some(value) = value {
                    sql.push_str(&format!(" AND {column} = ?"));
                    params.push(DuckValue::Text(value));
                }
            }
            for (column, value) in [("known", filter.known), ("present", filter.present)] {
                if let Some(value) = value {
                    sql.push_str(&format!(" AND {column} = ?"));
                    params.push(DuckValue::Boolean(value));
                }
            }
            sql.push_str(" ORDER BY mac");
            let mut statement = db.prepare(&sql)?;
            let rows = statement.query_map(params_from_iter(params), host_of_row)?;
            rows.collect()
        })
        .await
    }

    /// One host, with its address and presence history; `None` when no kept snapshot has it.
    pub async fn host(&self, mac: Mac) -> Result<Option<HostHistory>, InventoryError> {
        let mac = mac.to_string();
        self.with_db(move |db| {
            let host = {
                let mut statement = db.prepare(&format!(
                    "SELECT {INVENTORY_COLUMNS} FROM inventory WHERE mac = ?"
                ))?;
                let mut rows = statement.query_map([&mac], host_of_row)?;
                rows.next().transpose()?
            };
            let ip_history = address_history(db, &mac)?;
            let presence_history = presence_history(db, &mac)?;
            let host = match host {
                Some(host) => host,
                // Gone from the newest snapshots, but in the history: a host as the metadata
                // knows it, no longer leased nor present.
                None if !ip_history.is_empty() || presence_history.iter().any(|p| p.present) => {
                    let mut statement = db.prepare(
                        "SELECT name, owner, location, device_type FROM metadata WHERE mac = ?",
                    )?;
                    let known = statement
                        .query_map([&mac], |r| {
                            Ok((
                                r.get::<_, Option<String>>(0)?,
                                r.get::<_, Option<String>>(1)?,
                                r.get::<_, Option<String>>(2)?,
                                r.get::<_, String>(3)?,
                            ))
                        })?
                        .next()
                        .transpose()?;
                    let last_lease = ip_history.last();
                    Host {
                        mac: mac.clone(),
                        ip: None,
                        host_name: None,
                        name: known.as_ref().and_then(|k| k.0.clone()),
                        owner: known.as_ref().and_then(|k| k.1.clone()),
                        location: known.as_ref().and_then(|k| k.2.clone()),
                        device_type: known
                            .as_ref()
                            .map_or_else(|| "unknown".to_owned(), |k| k.3.clone()),
                        lease_status: None,
                        last_seen: last_lease.map(|l| l.to),
                        present: false,
                        known: known.is_some(),
                        wifi_interface: None,
                        signal_dbm: None,
                        device_id: None,
                    }
                }
                None => return Ok(None),
            };
            Ok(Some(HostHistory {
                host,
                ip_history,
                presence_history,
            }))
        })
        .await
    }

    /// The addresses of the hosts the inventory takes for Shelly devices: metadata type
    /// `shelly`, or (as homebot did) a host name starting with `shelly`.
    pub async fn shelly_addresses(&self) -> Result<Vec<String>, InventoryError> {
        self.with_db(|db| {
            let mut statement = db.prepare(
                "SELECT DISTINCT ip FROM inventory WHERE ip IS NOT NULL \
                 AND (lower(device_type) = 'shelly' OR lower(host_name) LIKE 'shelly%') ORDER BY ip",
            )?;
            let rows = statement.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
        .await
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

fn micros_to_time(us: Option<i64>) -> Option<DateTime<Utc>> {
    us.and_then(DateTime::from_timestamp_micros)
}

fn host_of_row(r: &duckdb::Row<'_>) -> Result<Host, duckdb::Error> {
    Ok(Host {
        mac: r.get(0)?,
        ip: r.get(1)?,
        host_name: r.get(2)?,
        name: r.get(3)?,
        owner: r.get(4)?,
        location: r.get(5)?,
        device_type: r.get(6)?,
        lease_status: r.get(7)?,
        last_seen: micros_to_time(r.get(8)?),
        present: r.get(9)?,
        known: r.get(10)?,
        wifi_interface: r.get(11)?,
        signal_dbm: r.get(12)?,
        device_id: None,
    })
}

/// Stretches of consecutive lease polls with the same address and status (gaps and islands).
fn address_history(db: &Connection, mac: &str) -> Result<Vec<AddressSpan>, duckdb::Error> {
    let mut statement = db.prepare(
        "WITH s AS (
            SELECT polled_at, coalesce(active_address, address) AS ip, status
            FROM leases WHERE mac = ?),
         c AS (
            SELECT *, CASE WHEN ip IS NOT DISTINCT FROM lag(ip) OVER w
                            AND status IS NOT DISTINCT FROM lag(status) OVER w
                           THEN 0 ELSE 1 END AS change
            FROM s WINDOW w AS (ORDER BY polled_at)),
         i AS (SELECT *, sum(change) OVER (ORDER BY polled_at) AS island FROM c)
         SELECT any_value(ip), any_value(status), epoch_us(min(polled_at)), epoch_us(max(polled_at))
         FROM i GROUP BY island ORDER BY min(polled_at)",
    )?;
    let rows = statement.query_map([mac], |r| {
        Ok(AddressSpan {
            ip: r.get(0)?,
            lease_status: r.get(1)?,
            from: micros_to_time(r.get(2)?).unwrap_or_default(),
            to: micros_to_time(r.get(3)?).unwrap_or_default(),
        })
    })?;
    rows.collect()
}

/// Stretches of Wi-Fi polls in which the host was registered, or was not (from its first
/// sighting on).
fn presence_history(db: &Connection, mac: &str) -> Result<Vec<PresenceSpan>, duckdb::Error> {
    let mut statement = db.prepare(
        "WITH first AS (SELECT min(polled_at) AS t FROM wifi WHERE mac = ?),
         polls AS (SELECT DISTINCT polled_at FROM wifi, first WHERE polled_at >= first.t),
         s AS (
            SELECT p.polled_at, w.mac IS NOT NULL AS present, w.interface
            FROM polls p LEFT JOIN wifi w ON w.polled_at = p.polled_at AND w.mac = ?),
         c AS (
            SELECT *, CASE WHEN present = lag(present) OVER w
                            AND interface IS NOT DISTINCT FROM lag(interface) OVER w
                           THEN 0 ELSE 1 END AS change
            FROM s WINDOW w AS (ORDER BY polled_at)),
         i AS (SELECT *, sum(change) OVER (ORDER BY polled_at) AS island FROM c)
         SELECT any_value(present), any_value(interface), epoch_us(min(polled_at)),
                epoch_us(max(polled_at))
         FROM i GROUP BY island ORDER BY min(polled_at)",
    )?;
    let rows = statement.query_map([mac, mac], |r| {
        Ok(PresenceSpan {
            present: r.get(0)?,
            interface: r.get(1)?,
            from: micros_to_time(r.get(2)?).unwrap_or_default(),
            to: micros_to_time(r.get(3)?).unwrap_or_default(),
        })
    })?;
    rows.collect()
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
