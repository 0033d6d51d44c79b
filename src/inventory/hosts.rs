//! Hosts seen on the network for the first time. The Mikrotik poller records every MAC address
//! of each poll in PostgreSQL (`network_hosts`); a MAC recorded for the first time that is not in
//! the device metadata raises one `unknown_device` alert, in the same transaction, so the alert
//! is raised exactly once — not again after a restart, nor by a second poller.

use sqlx::PgPool;

use super::metadata::Metadata;
use crate::domain::Mac;

/// A host as one poll saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub mac: Mac,
    pub ip: Option<String>,
    pub host_name: Option<String>,
}

/// Records `seen`; returns the MACs seen for the first time, and raises an `unknown_device`
/// alert for each of them that `metadata` does not know.
pub async fn record(
    pool: &PgPool,
    seen: &[Sighting],
    metadata: &Metadata,
) -> Result<Vec<Mac>, sqlx::Error> {
    if seen.is_empty() {
        return Ok(Vec::new());
    }
    let macs: Vec<String> = seen.iter().map(|s| s.mac.to_string()).collect();
    let ips: Vec<Option<String>> = seen.iter().map(|s| s.ip.clone()).collect();
    let names: Vec<Option<String>> = seen.iter().map(|s| s.host_name.clone()).collect();
    let mut tx = pool.begin().await?;
    let new: Vec<String> = sqlx::query_scalar(
        "INSERT INTO network_hosts (mac, first_ip, first_host_name) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) \
         ON CONFLICT (mac) DO NOTHING RETURNING mac",
    )
    .bind(&macs)
    .bind(&ips)
    .bind(&names)
    .fetch_all(&mut *tx)
    .await?;
    let new: Vec<Mac> = new.iter().filter_map(|m| Mac::parse(m)).collect();
    let unknown: Vec<&Sighting> = seen
        .iter()
        .filter(|s| new.contains(&s.mac) && metadata.get(&s.mac).is_none())
        .collect();
    if !unknown.is_empty() {
        let messages: Vec<String> = unknown.iter().map(|s| message(s)).collect();
        sqlx::query(
            "INSERT INTO alerts (device_id, alert_type, severity, message) \
             SELECT NULL, 'unknown_device', 'warning', m FROM UNNEST($1::text[]) AS m",
        )
        .bind(&messages)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    for s in &unknown {
        tracing::warn!(mac = %s.mac, ip = ?s.ip, host_name = ?s.host_name, "an unknown device joined the network");
    }
    Ok(new)
}

fn message(s: &Sighting) -> String {
    let mut text = format!("unknown device on the network: MAC {}", s.mac);
    if let Some(ip) = &s.ip {
        text.push_str(&format!(", IP {ip}"));
    }
    if let Some(name) = &s.host_name {
        text.push_str(&format!(", host name {name:?}"));
    }
    text.push_str("; add it to the device metadata file if it belongs");
    text
}
