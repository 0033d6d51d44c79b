//! Smart-house devices (seed 002) from a device catalog CSV: thermostats, bulbs, plugs, cameras
//! and motion sensors publishing the seed's flat record (temperature, power, energy per interval,
//! status, occasional alerts) as v1 telemetry.

use std::path::Path;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::link::{Link, LinkOptions};
use crate::physics::{daily, round, EnergyMeter, MeanReverting, Rng};

/// One row of `device_catalog.csv`.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEntry {
    pub device_id: String,
    pub device_type: String,
    pub user_id: String,
    pub location: String,
    pub manufacturer: String,
    pub model: String,
    /// Power drawn when on, in watts.
    pub rated_power_w: f64,
}

pub fn load_catalog(path: &Path) -> anyhow::Result<Vec<CatalogEntry>> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in reader.deserialize().enumerate() {
        let entry: CatalogEntry =
            row.map_err(|e| anyhow::anyhow!("{} row {}: {e}", path.display(), i + 2))?;
        out.push(entry);
    }
    Ok(out)
}

/// An alert a device reported, for the run loop to raise through the API.
#[derive(Debug, Clone)]
pub struct DeviceAlert {
    pub device_id: String,
    pub alert_type: String,
    pub severity: &'static str,
    pub message: String,
}

pub struct HouseConfig {
    pub entry: CatalogEntry,
    pub interval: Duration,
    pub alert_probability: f64,
    pub iot_prefix: String,
    pub brokers: Vec<String>,
    pub seed: u64,
    pub alerts: Option<mpsc::UnboundedSender<DeviceAlert>>,
}

/// How a device type behaves: chance of being on at the daily peak and off-peak, and which
/// alert it can raise.
fn behaviour(device_type: &str) -> (f64, f64, &'static str) {
    match device_type {
        "thermostat" => (0.9, 0.5, "temperature_out_of_range"),
        "bulb" | "light" => (0.9, 0.1, "bulb_failure"),
        "plug" => (0.7, 0.3, "overcurrent"),
        "camera" => (1.0, 1.0, "camera_offline"),
        "motion_sensor" | "sensor" => (1.0, 1.0, "motion_detected"),
        _ => (0.5, 0.5, "device_fault"),
    }
}

pub async fn run(config: HouseConfig) -> anyhow::Result<()> {
    let entry = &config.entry;
    let mut rng = Rng::for_device(config.seed, &entry.device_id);
    let mut temperature = MeanReverting::new(21.0 + rng.normal(), 0.01, 0.05);
    let mut energy = EnergyMeter::default();
    let link = Link::connect(
        &config.brokers,
        LinkOptions {
            client_id: format!("sim-{}", entry.device_id),
            device_id: entry.device_id.clone(),
            will: None,
            on_connect: None,
            subscriptions: Vec::new(),
        },
    )
    .await?;
    let topic = format!("{}/{}/telemetry", config.iot_prefix, entry.device_id);
    let (peak_on, off_peak_on, alert_type) = behaviour(&entry.device_type);
    let dt = config.interval.as_secs_f64();
    let mut tick = tokio::time::interval(config.interval);
    loop {
        tick.tick().await;
        let now = Utc::now();
        // Evening peak at 20:00.
        let evening = (daily(now, 20.0) + 1.0) / 2.0;
        let p_on = off_peak_on + (peak_on - off_peak_on) * evening;
        let on = rng.chance(p_on);
        let power = if on {
            entry.rated_power_w * (0.85 + 0.15 * rng.uniform())
        } else {
            entry.rated_power_w * 0.01
        };
        let wh = energy.add(power, dt);
        let setpoint = if entry.device_type == "thermostat" {
            21.5
        } else {
            20.5
        };
        let t = temperature.step(&mut rng, setpoint + 1.5 * daily(now, 15.0), dt);
        let alert = rng.chance(config.alert_probability);
        let body = json!({
            "device_id": entry.device_id,
            "device_type": entry.device_type,
            "user_id": entry.user_id,
            "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
            "temperature": round(t, 2),
            "power_usage": round(power, 1),
            "energy_consumption_wh": round(wh, 3),
            "status": if on { "online" } else { "standby" },
            "alert": if alert { alert_type } else { "none" },
            "location": entry.location,
            "manufacturer": entry.manufacturer,
            "model": entry.model,
        });
        link.publish(&topic, false, body.to_string()).await;
        if alert {
            if let Some(alerts) = &config.alerts {
                let _ = alerts.send(DeviceAlert {
                    device_id: entry.device_id.clone(),
                    alert_type: alert_type.to_owned(),
                    severity: "warning",
                    message: format!(
                        "{} {} in {} reports {alert_type}",
                        entry.manufacturer, entry.model, entry.location
                    ),
                });
            }
        }
    }
}
