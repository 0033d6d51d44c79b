//! The home network: the router, each configured Shelly and camera, and the metadata file.

use std::sync::Arc;

use serde_json::Value;

use super::common::{plural, setting, tls_fix};
use super::{bounded, Check};
use crate::clients::hikvision::CameraClient;
use crate::clients::http_auth::DeviceError;
use crate::clients::mikrotik::{MikrotikClient, PollError};
use crate::clients::shelly::ShellyClient;
use crate::clients::DeviceNetworks;
use crate::configuration::Settings;

/// The router: a login and its DHCP leases.
pub async fn router(settings: &Settings) -> Check {
    const NAME: &str = "router";
    let Some(url) = settings.mikrotik.url() else {
        return Check::ok(NAME, "not configured");
    };
    let client = match MikrotikClient::new(&settings.mikrotik, url) {
        Ok(client) => client,
        Err(e) => return Check::failed(NAME, format!("{e:#}"), setting("mikrotik.ca_file")),
    };
    match client.leases().await {
        Ok(leases) => Check::ok(
            NAME,
            format!("{url}: logged in, {} DHCP leases", leases.len()),
        ),
        Err(e) => {
            let fix = match &e {
                PollError::Request(text) if text.contains("certificate") => {
                    tls_fix(text, "mikrotik", "fingerprint", url).unwrap_or_default()
                }
                PollError::Status {
                    status: 401 | 403, ..
                } => format!(
                    "{} and {} (a RouterOS user with the `api` and `read` policies)",
                    setting("mikrotik.username"),
                    setting("mikrotik.password")
                ),
                PollError::TooLarge(_) => setting("mikrotik.max_answer_bytes"),
                _ => format!(
                    "is the router's REST API at {url}? {}",
                    setting("mikrotik.url")
                ),
            };
            Check::failed(NAME, format!("{url}: {e}"), fix)
        }
    }
}

/// A device's failure, with the settings that fix it.
fn device_failure(name: String, e: &DeviceError, hosts: &str, password: &str) -> Check {
    let detail = e.to_string();
    let section = hosts.split('.').next().unwrap_or_default();
    let host = name.split(' ').next_back().unwrap_or_default();
    if let Some(fix) = tls_fix(&detail, section, "fingerprints", host) {
        return Check::failed(name, detail, fix);
    }
    let fix = match e {
        DeviceError::Status {
            status: 401 | 403, ..
        } => setting(password),
        DeviceError::Refused { .. } => setting("network.device_subnets"),
        DeviceError::TooLarge { .. } => "the device's max_answer_bytes setting".into(),
        _ => format!("is it on and at that address? {}", setting(hosts)),
    };
    Check::failed(name, detail, fix)
}

/// A device client made with the device networks, or the failed check that says why not.
fn client<C>(
    settings: &Settings,
    (kind, hosts): (&str, &str),
    make: impl FnOnce(Arc<DeviceNetworks>) -> anyhow::Result<C>,
) -> Result<C, Check> {
    let networks = DeviceNetworks::from_settings(settings)
        .map_err(|e| Check::failed(kind, e.to_string(), setting("network.device_subnets")))?;
    make(Arc::new(networks)).map_err(|e| Check::failed(kind, format!("{e:#}"), setting(hosts)))
}

/// `check` of each of `hosts` at once, each bounded and named `KIND HOST`.
async fn each_host<F, Fut>(kind: &str, hosts: &[String], check: F) -> Vec<Check>
where
    F: Fn(String, String) -> Fut,
    Fut: std::future::Future<Output = Check>,
{
    futures_util::future::join_all(hosts.iter().map(|host| {
        let name = format!("{kind} {host}");
        let check = check(name.clone(), host.clone());
        async move { bounded(&name, check).await }
    }))
    .await
}

/// Each configured Shelly: its identity, then its status with the configured password.
pub async fn shellys(settings: &Settings) -> Vec<Check> {
    let shelly = &settings.shelly;
    let hosts: Vec<String> = shelly
        .hosts
        .iter()
        .chain(&shelly.gen1_hosts)
        .cloned()
        .collect();
    if hosts.is_empty() {
        return Vec::new();
    }
    let client = match client(settings, ("shelly", "shelly.hosts"), |networks| {
        ShellyClient::new(shelly, networks)
    }) {
        Ok(client) => client,
        Err(check) => return vec![check],
    };
    each_host("shelly", &hosts, |name, host| {
        let client = client.clone();
        async move { shelly_host(&client, name, &host).await }
    })
    .await
}

async fn shelly_host(client: &ShellyClient, name: String, host: &str) -> Check {
    let device = client.host(host);
    let identity = match device.get("/shelly").await {
        Ok(identity) => identity,
        Err(e) => return device_failure(name, &e, "shelly.hosts", "shelly.password"),
    };
    let generation = identity.get("gen").and_then(Value::as_u64).unwrap_or(1);
    let model = identity
        .get("model")
        .or_else(|| identity.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("?")
        .to_owned();
    let status = match generation {
        1 => "/status",
        _ => "/rpc/Shelly.GetStatus",
    };
    match device.get(status).await {
        Ok(_) => Check::ok(name, format!("{model} (Gen{generation}): status read")),
        Err(e) => {
            let password = match generation {
                1 if !client.is_gen1_host(host) => "shelly.gen1_hosts",
                _ => "shelly.password",
            };
            device_failure(name, &e, "shelly.hosts", password)
        }
    }
}

/// Each configured camera: its device info, with the configured credentials.
pub async fn cameras(settings: &Settings) -> Vec<Check> {
    let hosts = &settings.hikvision.hosts;
    if hosts.is_empty() {
        return Vec::new();
    }
    let client = match client(settings, ("camera", "hikvision.hosts"), |networks| {
        CameraClient::new(&settings.hikvision, networks)
    }) {
        Ok(client) => client,
        Err(check) => return vec![check],
    };
    each_host("camera", hosts, |name, host| {
        let client = client.clone();
        async move {
            match client.device_info(&client.host(&host)).await {
                Ok(info) => Check::ok(
                    name,
                    format!(
                        "{} serial {}: device info read",
                        info.model.as_deref().unwrap_or("HikVision camera"),
                        info.serial
                    ),
                ),
                Err(e) => device_failure(name, &e, "hikvision.hosts", "hikvision.password"),
            }
        }
    })
    .await
}

/// The device metadata file: every row it cannot use, with its line.
pub fn metadata(settings: &Settings) -> Check {
    const NAME: &str = "metadata";
    let path = &settings.inventory.metadata_csv;
    let shown = path.display().to_string();
    let fix = setting("inventory.metadata_csv");
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::warning(
                NAME,
                format!("{shown} does not exist: every host on the network is unknown"),
                format!("write it (mac_address,device_type,owner,location[,name]) or set {fix}"),
            )
        }
        Err(e) => return Check::failed(NAME, format!("cannot read {shown}: {e}"), fix),
    };
    match crate::inventory::metadata::parse_rows(&shown, &text) {
        Err(e) => Check::failed(
            NAME,
            e.to_string(),
            "mac_address,device_type,owner,location[,name] as the first line",
        ),
        Ok((metadata, problems)) if problems.is_empty() => Check::ok(
            NAME,
            format!("{shown}: {}", plural(metadata.len(), "device")),
        ),
        Ok((metadata, problems)) => {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            Check::failed(
                NAME,
                format!(
                    "{} cannot be used ({} can): {}",
                    plural(problems.len(), "row"),
                    metadata.len(),
                    lines.join("; ")
                ),
                format!("correct or remove those lines of {shown}; until then devicehub keeps the last good file"),
            )
        }
    }
}
