//! What the inventory answers: its hosts (`GET /api/inventory`), one host's address and
//! presence history, and the Shelly addresses the Shelly poller polls.

use chrono::{DateTime, Utc};
use duckdb::types::Value as DuckValue;
use duckdb::{params_from_iter, Connection};
use serde::Serialize;
use utoipa::ToSchema;

use super::store::{Inventory, InventoryError};
use crate::domain::Mac;

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

impl Inventory {
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

    /// The hosts the inventory takes for Shelly devices: metadata type `shelly` (adopted by the
    /// operator's metadata file), or (as homebot did) a host name starting with `shelly` (a
    /// name any DHCP client may give itself). Each with the MAC the router leased its address
    /// to.
    pub async fn shelly_hosts(&self) -> Result<Vec<ShellyHost>, InventoryError> {
        self.with_db(|db| {
            let mut statement = db.prepare(
                "SELECT ip, mac, bool_or(lower(device_type) = 'shelly') FROM inventory \
                 WHERE ip IS NOT NULL \
                 AND (lower(device_type) = 'shelly' OR lower(host_name) LIKE 'shelly%') \
                 GROUP BY ip, mac ORDER BY ip",
            )?;
            let rows = statement.query_map([], |r| {
                Ok(ShellyHost {
                    ip: r.get(0)?,
                    mac: r.get(1)?,
                    adopted: r.get(2)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

/// A Shelly host the inventory found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellyHost {
    pub ip: String,
    /// The MAC the router leased `ip` to.
    pub mac: String,
    /// Named `shelly` by the operator's metadata file (else by its DHCP host name only).
    pub adopted: bool,
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
