//! The stores and the broker: PostgreSQL, the MQTT broker, InfluxDB, the archive and the
//! journal, each tried the way the service uses it.

use std::time::Duration;

use rumqttc::{AsyncClient, ConnectionError, Event, Packet, QoS, SubscribeReasonCode};
use secrecy::ExposeSecret;

use super::common::{nonce, setting, tls_fix};
use super::Check;
use crate::configuration::{ArchiveBackend, ProcessRole, Settings};
use crate::stores::influxdb::{InfluxClient, InfluxError};
use crate::stores::objects::{ObjectError, ObjectStore};

/// PostgreSQL: a connection, its version, and migrations not applied yet.
pub async fn database(settings: &Settings) -> Check {
    const NAME: &str = "database";
    let url = crate::database::redacted_url(&settings.database);
    let options = match settings.database.connect_options() {
        Ok(options) => options,
        Err(e) => return Check::failed(NAME, e.to_string(), setting("database.url")),
    };
    let pool = crate::database::pool_options(&settings.database)
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await;
    let pool = match pool {
        Ok(pool) => pool,
        Err(e) => {
            return Check::failed(
                NAME,
                format!("cannot connect to {url}: {e}"),
                format!("is PostgreSQL running? {}", setting("database.url")),
            )
        }
    };
    let version: Result<String, _> = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    pool.close().await;
    let version = match version {
        Ok(v) => v,
        Err(e) => return Check::failed(NAME, format!("{url}: {e}"), setting("database.url")),
    };
    let known: Vec<&sqlx::migrate::Migration> = crate::database::MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .collect();
    let pending: Vec<&&sqlx::migrate::Migration> = known
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect();
    let unknown = applied
        .iter()
        .filter(|v| !known.iter().any(|m| m.version == **v))
        .count();
    match (pending.first(), unknown) {
        (Some(first), _) => Check::failed(
            NAME,
            format!(
                "PostgreSQL {version} at {url}: {} of {} migrations not applied (from {} {})",
                pending.len(),
                known.len(),
                first.version,
                first.description
            ),
            "`devicehub migrate` (`devicehub serve` applies them too)",
        ),
        (None, 0) => Check::ok(
            NAME,
            format!(
                "PostgreSQL {version} at {url}, all {} migrations applied",
                known.len()
            ),
        ),
        (None, n) => Check::warning(
            NAME,
            format!("PostgreSQL {version} at {url}: {n} migrations this devicehub does not know"),
            "a newer devicehub ran on this database; run that version",
        ),
    }
}

/// The broker: a login with the configured credentials and a subscription to every topic the
/// collector reads, which the broker's ACL must allow.
pub async fn broker(settings: &Settings) -> Check {
    const NAME: &str = "broker";
    let url = url::Url::parse(settings.mqtt.url.expose_secret()).ok();
    let user = url
        .as_ref()
        .map(|u| u.username().to_owned())
        .unwrap_or_default();
    let address = url
        .as_ref()
        .map(|u| {
            format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            )
        })
        .unwrap_or_default();
    let client_id = format!("{}-doctor-{}", settings.mqtt.client_id, nonce());
    let options = match crate::stores::broker::options(&settings.mqtt, &client_id, false) {
        Ok(options) => options,
        Err(e) => return Check::failed(NAME, e.to_string(), setting("mqtt.url")),
    };
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let filters = crate::wire::Decoder::from_settings(&settings.mqtt).subscriptions();
    let mut asked = false;
    let result = loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) if !asked => {
                asked = true;
                let subscriptions = filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.subscribe_many(subscriptions).await {
                    break Check::failed(NAME, e.to_string(), setting("mqtt.url"));
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused: Vec<&str> = ack
                    .return_codes
                    .iter()
                    .zip(&filters)
                    .filter(|(code, _)| matches!(code, SubscribeReasonCode::Failure))
                    .map(|(_, f)| f.as_str())
                    .collect();
                break match refused.is_empty() {
                    true => Check::ok(
                        NAME,
                        format!(
                            "logged in to {address} as {user:?}; subscribed to the {} collector topics",
                            filters.len()
                        ),
                    ),
                    false => Check::failed(
                        NAME,
                        format!(
                            "logged in to {address} as {user:?}, but the broker refuses {}",
                            refused.join(", ")
                        ),
                        format!("the broker's ACL must let {user:?} read these topics (config/mosquitto/acl)"),
                    ),
                };
            }
            Ok(_) => {}
            Err(ConnectionError::ConnectionRefused(code)) => {
                break Check::failed(
                    NAME,
                    format!("{address} refused the login as {user:?}: {code:?}"),
                    format!(
                        "the user and password in {} (mqtt://user:password@host)",
                        setting("mqtt.url")
                    ),
                )
            }
            Err(e) => {
                let detail = format!(
                    "cannot reach {address}: {}",
                    crate::clients::error_chain(&e)
                );
                let fix = tls_fix(&detail, "mqtt", "fingerprint", &address)
                    .unwrap_or_else(|| format!("is the broker running? {}", setting("mqtt.url")));
                break Check::failed(NAME, detail, fix);
            }
        }
    };
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
    result
}

/// InfluxDB: a probe point written and read back.
pub async fn influxdb(settings: &Settings) -> Check {
    const NAME: &str = "influxdb";
    let url = settings.influxdb.url.clone();
    let client = match InfluxClient::new(&settings.influxdb) {
        Ok(client) => client,
        Err(e) => return Check::failed(NAME, format!("{e:#}"), setting("influxdb.url")),
    };
    let target = match settings.influxdb.api {
        crate::configuration::InfluxApi::V1 => format!("database {:?}", settings.influxdb.database),
        crate::configuration::InfluxApi::V2 => format!("bucket {:?}", settings.influxdb.bucket),
    };
    match client.probe(&nonce()).await {
        Ok(true) => Check::ok(
            NAME,
            format!("{url}: a probe point written to {target} and read back"),
        ),
        Ok(false) => Check::failed(
            NAME,
            format!("{url}: a probe point was written to {target} but not read back"),
            "InfluxQL queries must reach the bucket written to (InfluxDB 2: a DBRP mapping)",
        ),
        Err(e) => {
            let detail = format!("{url}: {}", crate::clients::error_chain(&e));
            let fix = match &e {
                InfluxError::Unreachable(_) => tls_fix(&detail, "influxdb", "fingerprint", &url)
                    .unwrap_or_else(|| {
                        format!("is InfluxDB running at {url}? {}", setting("influxdb.url"))
                    }),
                _ => match e.status() {
                    Some(401 | 403) => format!(
                        "{} (v2) or {} and {} (v1)",
                        setting("influxdb.token"),
                        setting("influxdb.username"),
                        setting("influxdb.password")
                    ),
                    Some(404) => format!(
                        "{} or {} must exist (`devicehub serve` creates a v1 database)",
                        setting("influxdb.bucket"),
                        setting("influxdb.database")
                    ),
                    _ => "see InfluxDB's log".into(),
                },
            };
            Check::failed(NAME, detail, fix)
        }
    }
}

/// The archive: a probe object put, read back and deleted.
pub async fn archive(settings: &Settings) -> Check {
    const NAME: &str = "archive";
    let (place, fix) = match settings.archive.backend {
        ArchiveBackend::S3 => (
            format!(
                "S3 bucket {:?} at {}",
                settings.s3.bucket,
                settings.s3.endpoint.as_deref().unwrap_or("AWS")
            ),
            None,
        ),
        ArchiveBackend::Local => (
            format!("directory {}", settings.archive.dir.display()),
            Some(format!(
                "{} must be a writable directory",
                setting("archive.dir")
            )),
        ),
    };
    let endpoint = settings.s3.endpoint.clone().unwrap_or_default();
    let failed = |e: ObjectError| {
        let detail = format!("{place}: {e}");
        let tls = tls_fix(&detail, "s3", "fingerprint", &endpoint);
        let fix = fix.clone().or(tls).unwrap_or_else(|| match &e {
            ObjectError::Denied(text) if text.contains("NoSuchBucket") => format!(
                "{} (`devicehub serve` creates a missing bucket when the keys may)",
                setting("s3.bucket")
            ),
            ObjectError::Denied(_) => format!(
                "{} and {}",
                setting("s3.access_key"),
                setting("s3.secret_key")
            ),
            _ => format!("is the S3 server running? {}", setting("s3.endpoint")),
        });
        Check::failed(NAME, detail, fix)
    };
    let store = match ObjectStore::from_settings(settings) {
        Ok(store) => store,
        Err(e) => return failed(e),
    };
    let key = format!("_devicehub/doctor-{}", nonce());
    let probe = b"devicehub doctor probe".to_vec();
    if let Err(e) = store.put(&key, probe.clone()).await {
        return failed(e);
    }
    let read = store.get(&key).await;
    let deleted = store.delete(&key).await;
    match (read, deleted) {
        (Ok(Some(bytes)), Ok(())) if bytes == probe => Check::ok(
            NAME,
            format!("{place}: a probe object written, read back and deleted"),
        ),
        (Ok(_), Ok(())) => Check::failed(
            NAME,
            format!("{place}: the probe object read back is not what was written"),
            "see the S3 server's log",
        ),
        (Err(e), _) | (_, Err(e)) => failed(e),
    }
}

/// The collector's journal directory: writable, with room (only where the collector runs).
pub fn journal(settings: &Settings) -> Option<Check> {
    const NAME: &str = "journal";
    if !settings.runs(ProcessRole::Collector) {
        return None;
    }
    let dir = &settings.collector.journal_dir;
    let fix = || {
        format!(
            "{} must be a writable directory",
            setting("collector.journal_dir")
        )
    };
    let probe = dir.join(format!(".doctor-{}", nonce()));
    let written = std::fs::create_dir_all(dir)
        .and_then(|()| {
            use std::io::Write;
            let mut file = std::fs::File::create(&probe)?;
            file.write_all(b"devicehub doctor probe")?;
            file.sync_all()
        })
        .and_then(|()| std::fs::remove_file(&probe));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&probe);
        return Some(Check::failed(
            NAME,
            format!("{}: {e}", dir.display()),
            fix(),
        ));
    }
    let free = match fs4::available_space(dir) {
        Ok(free) => free,
        Err(e) => {
            return Some(Check::failed(
                NAME,
                format!("{}: {e}", dir.display()),
                fix(),
            ))
        }
    };
    let cap = settings.collector.max_journal_bytes;
    let mib = |b: u64| b / (1024 * 1024);
    let detail = format!(
        "{}: writable, {} MiB free (the journal may take up to {} MiB)",
        dir.display(),
        mib(free),
        mib(cap)
    );
    Some(if free < 2 * settings.collector.segment_bytes {
        Check::failed(NAME, detail, "free space on that disk, or move the journal")
    } else if free < cap {
        Check::warning(
            NAME,
            detail,
            format!(
                "free space, or a smaller {}",
                setting("collector.max_journal_bytes")
            ),
        )
    } else {
        Check::ok(NAME, detail)
    })
}
