//! `run`: a realistic home or fleet from a scenario file, until stopped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokio::sync::mpsc;

use crate::profiles::esp32::{self, Esp32Config, Esp32Stats};
use crate::profiles::house::{self, HouseConfig};
use crate::profiles::meter::{self, MeterConfig};
use crate::profiles::mikrotik::{self, colon_mac, mac_for, Host};
use crate::profiles::sensor::{self, SensorConfig};
use crate::profiles::shelly::{self, shelly_mac};
use crate::register::{Api, Registration};
use crate::scenario::{group_ids, MeterKind, Scenario};

#[derive(Args)]
pub struct RunArgs {
    /// The scenario file.
    #[arg(long, default_value = "config/simulator/home.toml")]
    scenario: PathBuf,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override the scenario's brokers (repeatable).
    #[arg(long)]
    broker: Vec<String>,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
}

/// What a scenario simulates, with its device catalog read once.
pub struct Inventory {
    /// Every device as devicehub should register it.
    pub devices: Vec<Registration>,
    /// Every host as the router leases it.
    pub hosts: Vec<Host>,
    /// The `[house]` catalog's rows.
    pub catalog: Vec<house::CatalogEntry>,
}

pub fn inventory(scenario: &Scenario) -> anyhow::Result<Inventory> {
    let catalog = match &scenario.house {
        Some(section) => house::load_catalog(&section.catalog)?,
        None => Vec::new(),
    };
    let mut devices = Vec::new();
    let mut hosts = Vec::new();
    let mut lan = 20u8;
    let mut host = |name: &str, mac: Option<String>, address: Option<String>| {
        lan = lan.wrapping_add(1);
        Host {
            host_name: name.to_owned(),
            mac: mac.unwrap_or_else(|| mac_for(name)),
            address: address.unwrap_or_else(|| format!("192.168.88.{lan}")),
        }
    };
    for group in &scenario.meters {
        for id in group_ids(&group.prefix, group.count) {
            let (kind, name) = match group.kind {
                MeterKind::Ac => ("ac_meter", "25 kV AC traction meter"),
                MeterKind::Dc => ("dc_meter", "750 V DC traction meter"),
            };
            devices.push(Registration {
                device_id: id.clone(),
                device_name: format!("{name} {id}"),
                device_type: kind.into(),
                location: group.location.clone(),
                metadata: json!({"send_interval_s": group.send_interval_s, "simulated": true}),
            });
        }
    }
    for group in &scenario.sensors {
        for id in group_ids(&group.prefix, group.count) {
            hosts.push(host(&id, None, None));
            devices.push(Registration {
                device_id: id.clone(),
                device_name: format!("Temperature/humidity sensor {id}"),
                device_type: "temperature".into(),
                location: group.location.clone(),
                metadata: json!({"simulated": true}),
            });
        }
    }
    for entry in &catalog {
        hosts.push(host(&entry.device_id, None, None));
        devices.push(Registration {
            device_id: entry.device_id.clone(),
            device_name: format!("{} {}", entry.manufacturer, entry.model),
            device_type: entry.device_type.clone(),
            location: Some(entry.location.clone()),
            metadata: json!({
                "user_id": entry.user_id, "owner": entry.user_id,
                "manufacturer": entry.manufacturer, "model": entry.model,
                "installed_on": installed_on(&entry.device_id),
                "rated_power_w": entry.rated_power_w, "simulated": true,
            }),
        });
    }
    for group in &scenario.esp32 {
        for id in group_ids(&group.prefix, group.count) {
            hosts.push(host(&id, None, None));
            devices.push(Registration {
                device_id: id.clone(),
                device_name: format!("ESP32 {id}"),
                device_type: "esp32".into(),
                location: group.location.clone(),
                metadata: json!({"protocol": "qs/v1", "simulated": true}),
            });
        }
    }
    for s in &scenario.shelly {
        let mac = shelly_mac(&s.id);
        let bytes: Vec<u8> = (0..6)
            .filter_map(|i| u8::from_str_radix(&mac[i * 2..i * 2 + 2], 16).ok())
            .collect();
        hosts.push(host(
            &s.id,
            Some(colon_mac(&bytes)),
            Some(s.http.ip().to_string()),
        ));
        devices.push(Registration {
            device_id: s.id.clone(),
            device_name: format!("Shelly {}", s.model.app()),
            device_type: "shelly".into(),
            location: s.location.clone(),
            metadata: json!({"model": s.model.model_code(), "http": s.http.to_string(), "simulated": true}),
        });
    }
    for c in &scenario.camera {
        hosts.push(host(
            &format!(
                "HIKVISION-{}",
                &c.serial[c.serial.len().saturating_sub(8)..]
            ),
            Some(crate::profiles::camera::camera_mac(&c.serial)),
            Some(c.http.ip().to_string()),
        ));
    }
    if let Some(m) = &scenario.mikrotik {
        for name in &m.extra_hosts {
            hosts.push(host(name, None, None));
        }
    }
    Ok(Inventory {
        devices,
        hosts,
        catalog,
    })
}

#[derive(Args)]
pub struct DevicesArgs {
    #[arg(long, default_value = "config/simulator/home.toml")]
    scenario: PathBuf,
}

/// Prints the devices a scenario simulates, one JSON object per line.
pub fn list_devices(args: DevicesArgs) -> anyhow::Result<()> {
    let scenario = Scenario::load(&args.scenario)?;
    for d in inventory(&scenario)?.devices {
        println!(
            "{}",
            json!({"device_id": d.device_id, "device_type": d.device_type, "device_name": d.device_name})
        );
    }
    Ok(())
}

/// Makes the Mikrotik emulator's certificate unless it exists; prints its path.
pub fn tls_cert(args: DevicesArgs) -> anyhow::Result<()> {
    let scenario = Scenario::load(&args.scenario)?;
    let section = scenario
        .mikrotik
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("{} has no [mikrotik]", args.scenario.display()))?;
    let cert = section.tls_cert.as_ref().ok_or_else(|| {
        anyhow::anyhow!("{}: [mikrotik] has no tls_cert", args.scenario.display())
    })?;
    mikrotik::ensure_certificate(cert, &section.http.ip().to_string())?;
    println!("{}", cert.display());
    Ok(())
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut scenario = Scenario::load(&args.scenario)?;
    if let Some(seed) = args.seed {
        scenario.seed = seed;
    }
    if !args.broker.is_empty() {
        scenario.mqtt.brokers = args.broker.clone();
    }
    let stop = async move {
        match args.seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    run_scenario(scenario, stop).await
}

/// Registers (with an `[api]` section) and runs every device of `scenario` until `stop`
/// completes; fails if a device task ends on its own.
pub async fn run_scenario(
    scenario: Scenario,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let Inventory {
        devices,
        hosts,
        catalog,
    } = inventory(&scenario)?;
    let alerts = match &scenario.api {
        Some(section) => {
            let mut api = Api::login(section).await?;
            let created = api.register(&devices).await?;
            eprintln!(
                "registered {created} new devices of {} with {}",
                devices.len(),
                section.url
            );
            let (tx, mut rx) = mpsc::unbounded_channel::<house::DeviceAlert>();
            tokio::spawn(async move {
                while let Some(alert) = rx.recv().await {
                    if let Err(e) = api.raise(&alert).await {
                        eprintln!("devicehub-sim: cannot raise an alert: {e}");
                    }
                }
            });
            Some(tx)
        }
        None => None,
    };
    let mut tasks = spawn_devices(&scenario, catalog, alerts, hosts)?;
    eprintln!(
        "simulating {} devices (seed {}) on {}; Ctrl-C stops",
        devices.len(),
        scenario.seed,
        scenario.mqtt.brokers.join(", ")
    );
    let outcome = tokio::select! {
        _ = stop => Ok(()),
        failed = first_to_end(&mut tasks) => Err(anyhow::anyhow!("a simulated device stopped: {failed}")),
    };
    tasks.shutdown().await;
    outcome
}

/// Waits for the first device task that ends (they run forever unless they fail).
async fn first_to_end(tasks: &mut tokio::task::JoinSet<(String, anyhow::Result<()>)>) -> String {
    match tasks.join_next().await {
        Some(Ok((id, Err(e)))) => format!("{id}: {e:#}"),
        Some(Ok((id, Ok(())))) => format!("{id} ended"),
        Some(Err(e)) => e.to_string(),
        None => std::future::pending().await,
    }
}

pub fn spawn_devices(
    scenario: &Scenario,
    catalog: Vec<house::CatalogEntry>,
    alerts: Option<mpsc::UnboundedSender<house::DeviceAlert>>,
    hosts: Vec<Host>,
) -> anyhow::Result<tokio::task::JoinSet<(String, anyhow::Result<()>)>> {
    let mqtt = &scenario.mqtt;
    let seed = scenario.seed;
    let mut set = tokio::task::JoinSet::new();
    for group in &scenario.meters {
        for id in group_ids(&group.prefix, group.count) {
            let config =
                MeterConfig::from_group(group, id.clone(), &mqtt.iot_prefix, &mqtt.brokers, seed);
            set.spawn(async move { (id, meter::run(config).await) });
        }
    }
    for group in &scenario.sensors {
        for id in group_ids(&group.prefix, group.count) {
            let config = SensorConfig {
                device_id: id.clone(),
                interval: Duration::from_secs(group.interval_s.max(1)),
                iot_prefix: mqtt.iot_prefix.clone(),
                brokers: mqtt.brokers.clone(),
                seed,
            };
            set.spawn(async move { (id, sensor::run(config).await) });
        }
    }
    if let Some(section) = &scenario.house {
        for entry in catalog {
            let id = entry.device_id.clone();
            let config = HouseConfig {
                entry,
                interval: Duration::from_secs(section.interval_s.max(1)),
                alert_probability: section.alert_probability,
                iot_prefix: mqtt.iot_prefix.clone(),
                brokers: mqtt.brokers.clone(),
                seed,
                alerts: alerts.clone(),
            };
            set.spawn(async move { (id, house::run(config).await) });
        }
    }
    for group in &scenario.esp32 {
        for id in group_ids(&group.prefix, group.count) {
            let config = Esp32Config {
                device_id: id.clone(),
                interval: Duration::from_secs(group.interval_s.max(1)),
                ack_timeout: Duration::from_secs(group.ack_timeout_s.max(1)),
                max_retries: group.max_retries,
                qs_prefix: mqtt.qs_prefix.clone(),
                brokers: mqtt.brokers.clone(),
                seed,
                fw_version: "1.8.2".into(),
            };
            let stats = Arc::new(Esp32Stats::default());
            set.spawn(async move { (id, esp32::run(config, stats).await) });
        }
    }
    for device in &scenario.shelly {
        let id = device.id.clone();
        let (device, brokers) = (device.clone(), mqtt.brokers.clone());
        set.spawn(async move { (id, shelly::run(device, brokers, seed).await) });
    }
    for device in &scenario.camera {
        let id = format!("camera {}", device.serial);
        let device = device.clone();
        set.spawn(async move { (id, crate::profiles::camera::run(device).await) });
    }
    if let Some(section) = &scenario.mikrotik {
        let server = mikrotik::serve(section, hosts)?;
        eprintln!(
            "Mikrotik REST emulator on {}://{}/rest/ip/dhcp-server/lease",
            if section.tls_cert.is_some() {
                "https"
            } else {
                "http"
            },
            section.http
        );
        set.spawn(async move { ("mikrotik".to_owned(), server.await.map_err(Into::into)) });
    }
    Ok(set)
}

/// A made-up installation date for a catalog device, the same on every run: a day of 2025 picked
/// by its id (the analytics' `device_age_days`).
fn installed_on(device_id: &str) -> String {
    let day = device_id.bytes().map(u32::from).sum::<u32>() % 365;
    let date = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap_or_default()
        + chrono::Days::new(u64::from(day));
    date.format("%Y-%m-%d").to_string()
}
