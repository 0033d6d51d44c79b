//! v1 flat sensors (seed 004): temperature and humidity in one flat JSON object per interval.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde_json::json;

use crate::link::{Link, LinkOptions};
use crate::physics::{daily, round, MeanReverting, Rng};

pub struct SensorConfig {
    pub device_id: String,
    pub interval: Duration,
    pub iot_prefix: String,
    pub brokers: Vec<String>,
    pub seed: u64,
}

pub async fn run(config: SensorConfig) -> anyhow::Result<()> {
    let mut rng = Rng::for_device(config.seed, &config.device_id);
    let mut temperature = MeanReverting::new(21.0 + rng.normal(), 0.01, 0.05);
    let mut humidity = MeanReverting::new(45.0 + 3.0 * rng.normal(), 0.01, 0.2);
    let link = Link::connect(
        &config.brokers,
        LinkOptions {
            client_id: format!("sim-{}", config.device_id),
            device_id: config.device_id.clone(),
            will: None,
            on_connect: None,
            subscriptions: Vec::new(),
        },
    )
    .await?;
    let topic = format!("{}/{}/telemetry", config.iot_prefix, config.device_id);
    let dt = config.interval.as_secs_f64();
    let mut tick = tokio::time::interval(config.interval);
    loop {
        tick.tick().await;
        let now = Utc::now();
        // Warmest in the afternoon; air is drier when it is warm.
        let t = temperature.step(&mut rng, 21.0 + 2.5 * daily(now, 15.0), dt);
        let h = humidity
            .step(&mut rng, 45.0 - 6.0 * daily(now, 15.0), dt)
            .clamp(5.0, 95.0);
        let body = json!({
            "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, true),
            "device_id": config.device_id,
            "temperature": round(t, 2),
            "humidity": round(h, 1),
        });
        link.publish(&topic, false, body.to_string()).await;
    }
}
