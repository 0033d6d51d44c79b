//! v2 traction power meters (DC 750 V, AC 25 kV): samples at a sampling cadence, one datagram of
//! buffered samples per send interval with a per-device `seq`, the retained `online` status on
//! connect and `offline` as last will, hellos, and answers to commands (including OTA).

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rumqttc::{LastWill, QoS};
use serde_json::{json, Value};

use crate::link::{Link, LinkOptions};
use crate::physics::{daily, round, EnergyMeter, MeanReverting, Rng};
use crate::scenario::{MeterGroup, MeterKind};

/// Most measurements a v2 datagram may carry (DESIGN).
const MAX_MEASUREMENTS: usize = 200;

#[derive(Debug, Clone)]
pub struct MeterConfig {
    pub device_id: String,
    pub kind: MeterKind,
    pub sample_interval: Duration,
    pub send_interval: Duration,
    pub hello_interval: Duration,
    pub fw_version: String,
    pub loss_probability: f64,
    pub iot_prefix: String,
    pub brokers: Vec<String>,
    pub seed: u64,
}

impl MeterConfig {
    pub fn from_group(
        group: &MeterGroup,
        device_id: String,
        iot_prefix: &str,
        brokers: &[String],
        seed: u64,
    ) -> Self {
        Self {
            device_id,
            kind: group.kind,
            sample_interval: Duration::from_millis(group.sample_interval_ms),
            send_interval: Duration::from_secs(group.send_interval_s),
            hello_interval: Duration::from_secs(group.hello_interval_s),
            fw_version: group.fw_version.clone(),
            loss_probability: group.loss_probability,
            iot_prefix: iot_prefix.to_owned(),
            brokers: brokers.to_vec(),
            seed,
        }
    }

    fn topic(&self, kind: &str) -> String {
        format!("{}/{}/{kind}", self.iot_prefix, self.device_id)
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The electrical state of a train's meter.
struct Physics {
    rng: Rng,
    kind: MeterKind,
    voltage: MeanReverting,
    current: MeanReverting,
    frequency: MeanReverting,
    power_factor: MeanReverting,
    energy: EnergyMeter,
}

impl Physics {
    fn new(kind: MeterKind, rng: Rng) -> Self {
        let (v, i) = match kind {
            MeterKind::Ac => (25_000.0, 120.0),
            MeterKind::Dc => (750.0, 600.0),
        };
        Self {
            rng,
            kind,
            voltage: MeanReverting::new(v, 0.2, v * 0.004),
            current: MeanReverting::new(i, 0.1, i * 0.08),
            frequency: MeanReverting::new(50.0, 0.5, 0.01),
            power_factor: MeanReverting::new(0.95, 0.2, 0.005),
            energy: EnergyMeter::default(),
        }
    }

    /// One sample: the measurements `(type, value, unit)` at `t`, `dt_s` after the last one.
    fn sample(&mut self, t: DateTime<Utc>, dt_s: f64) -> Vec<(&'static str, f64, &'static str)> {
        // Service is busier by day: the mean current follows a daily cycle peaking at 17:00.
        let load = 0.6 + 0.4 * daily(t, 17.0);
        match self.kind {
            MeterKind::Ac => {
                let i = self
                    .current
                    .step(&mut self.rng, 120.0 * load, dt_s)
                    .max(0.0);
                let v = self.voltage.step(&mut self.rng, 25_000.0 - 8.0 * i, dt_s);
                let f = self.frequency.step(&mut self.rng, 50.0, dt_s);
                let pf = self
                    .power_factor
                    .step(&mut self.rng, 0.95, dt_s)
                    .clamp(0.7, 1.0);
                self.energy.add(v * i * pf, dt_s);
                vec![
                    ("voltage_ac", round(v, 1), "V"),
                    ("current_ac", round(i, 2), "A"),
                    ("frequency", round(f, 3), "Hz"),
                    ("power_factor", round(pf, 3), ""),
                    ("energy", round(self.energy.wh / 1000.0, 3), "kWh"),
                ]
            }
            MeterKind::Dc => {
                let i = self
                    .current
                    .step(&mut self.rng, 600.0 * load, dt_s)
                    .max(0.0);
                // The catenary sags under load.
                let v = self.voltage.step(&mut self.rng, 780.0 - 0.06 * i, dt_s);
                self.energy.add(v * i, dt_s);
                vec![
                    ("voltage_dc", round(v, 1), "V"),
                    ("current_dc", round(i, 1), "A"),
                    ("energy", round(self.energy.wh / 1000.0, 3), "kWh"),
                ]
            }
        }
    }
}

/// Runs one meter until the task is dropped.
pub async fn run(config: MeterConfig) -> anyhow::Result<()> {
    let mut config = config;
    let rng = Rng::for_device(config.seed, &config.device_id);
    let mut physics = Physics::new(config.kind, rng);
    loop {
        // One power-on: `seq` starts at 0 again.
        match power_on(&mut config, &mut physics).await? {
            Shutdown::Reboot => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

enum Shutdown {
    Reboot,
}

async fn power_on(config: &mut MeterConfig, physics: &mut Physics) -> anyhow::Result<Shutdown> {
    let booted = tokio::time::Instant::now();
    let device_id = config.device_id.clone();
    let status = move |status: &str| {
        json!({"v": 2, "device_id": device_id, "status": status, "ts": ts(Utc::now())})
            .to_string()
            .into_bytes()
    };
    let link = Link::connect(
        &config.brokers,
        LinkOptions {
            client_id: format!("sim-{}", config.device_id),
            device_id: config.device_id.clone(),
            will: Some(LastWill::new(
                config.topic("status"),
                status("offline"),
                QoS::AtLeastOnce,
                true,
            )),
            on_connect: Some((config.topic("status"), status("online"))),
            subscriptions: vec![config.topic("command")],
        },
    )
    .await?;
    let mut link = link;
    let mut seq = 0u64;
    let mut buffer: Vec<Value> = Vec::new();
    let mut last_sample = Utc::now();
    let mut timers = Timers::new(config).await;
    // A hello at power-on reports the firmware.
    send_hello(config, &link, &mut seq, booted).await;
    loop {
        tokio::select! {
            _ = timers.sample.tick() => {
                let now = Utc::now();
                let dt = (now - last_sample).num_milliseconds().max(1) as f64 / 1000.0;
                last_sample = now;
                for (kind, val, unit) in physics.sample(now, dt) {
                    buffer.push(json!({"ts": ts(now), "type": kind, "val": val, "unit": unit}));
                }
            }
            _ = timers.send.tick() => {
                for chunk in std::mem::take(&mut buffer).chunks(MAX_MEASUREMENTS) {
                    seq += 1;
                    // A datagram lost on the radio link: its number is skipped.
                    if physics.rng.chance(config.loss_probability) {
                        continue;
                    }
                    let body = json!({"v": 2, "device_id": config.device_id, "ts": ts(Utc::now()),
                        "seq": seq, "msg_type": "telemetry", "measurements": chunk});
                    link.publish(&config.topic("telemetry"), false, body.to_string()).await;
                }
            }
            _ = timers.hello.tick(), if timers.periodic_hellos => {
                send_hello(config, &link, &mut seq, booted).await;
            }
            Some(message) = link.incoming.recv() => {
                match command(config, &link, &mut seq, booted, &message.payload).await {
                    Outcome::Done => {}
                    Outcome::Reconfigured => timers = Timers::new(config).await,
                    Outcome::Reboot => {
                        link.publish(&config.topic("status"), true, status("offline")).await;
                        link.disconnect().await;
                        return Ok(Shutdown::Reboot);
                    }
                }
            }
        }
    }
}

/// The meter's cadence, from its configuration.
struct Timers {
    sample: tokio::time::Interval,
    send: tokio::time::Interval,
    hello: tokio::time::Interval,
    /// Hellos are for liveness when telemetry is rarer than the hello interval.
    periodic_hellos: bool,
}

impl Timers {
    async fn new(config: &MeterConfig) -> Self {
        let sample = tokio::time::interval(config.sample_interval);
        // The first send and hello come one interval from now, not at once.
        let mut send = tokio::time::interval(config.send_interval);
        send.tick().await;
        let mut hello = tokio::time::interval(config.hello_interval);
        hello.tick().await;
        Self {
            sample,
            send,
            hello,
            periodic_hellos: config.send_interval > config.hello_interval,
        }
    }
}

/// What a command leaves to the main loop.
enum Outcome {
    Done,
    /// The cadence changed: restart the timers.
    Reconfigured,
    Reboot,
}

async fn send_hello(
    config: &MeterConfig,
    link: &Link,
    seq: &mut u64,
    booted: tokio::time::Instant,
) {
    *seq += 1;
    let body = json!({
        "v": 2, "device_id": config.device_id, "ts": ts(Utc::now()), "seq": *seq, "msg_type": "hello",
        "fw_version": config.fw_version,
        "uptime_s": booted.elapsed().as_secs(),
        "broker_connections": config.brokers.len(),
        "buf_usage_pct": 3,
        "temp_internal": 41.5,
    });
    link.publish(&config.topic("hello"), false, body.to_string())
        .await;
}

async fn command(
    config: &mut MeterConfig,
    link: &Link,
    seq: &mut u64,
    booted: tokio::time::Instant,
    payload: &[u8],
) -> Outcome {
    let Ok(command) = serde_json::from_slice::<Value>(payload) else {
        return Outcome::Done;
    };
    let Some(cmd_id) = command["cmd_id"].as_str().map(str::to_owned) else {
        return Outcome::Done;
    };
    let ack = |result: &str, detail: String| {
        json!({"v": 2, "device_id": config.device_id, "cmd_id": cmd_id, "ts": ts(Utc::now()),
               "result": result, "detail": detail})
        .to_string()
    };
    let params = &command["params"];
    let ack_topic = config.topic("command/ack");
    match command["cmd"].as_str().unwrap_or_default() {
        "update_config" => {
            let secs = |key: &str| params[key].as_u64().filter(|v| (1..=86_400).contains(v));
            let sample_ms = params["sample_interval_ms"]
                .as_u64()
                .filter(|v| (10..=3_600_000).contains(v));
            let known = ["send_interval_s", "hello_interval_s", "sample_interval_ms"];
            let given: Vec<&String> = params
                .as_object()
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            let invalid = given.iter().any(|k| {
                !known.contains(&k.as_str())
                    || match k.as_str() {
                        "sample_interval_ms" => sample_ms.is_none(),
                        key => secs(key).is_none(),
                    }
            });
            if given.is_empty() || invalid {
                link.publish(
                    &ack_topic,
                    false,
                    ack(
                        "rejected",
                        format!("expected any of {known:?} with positive values, got {params}"),
                    ),
                )
                .await;
                return Outcome::Done;
            }
            if let Some(s) = secs("send_interval_s") {
                config.send_interval = Duration::from_secs(s);
            }
            if let Some(s) = secs("hello_interval_s") {
                config.hello_interval = Duration::from_secs(s);
            }
            if let Some(ms) = sample_ms {
                config.sample_interval = Duration::from_millis(ms);
            }
            link.publish(
                &ack_topic,
                false,
                ack("accepted", format!("applied {params}")),
            )
            .await;
            Outcome::Reconfigured
        }
        "request_status" => {
            link.publish(&ack_topic, false, ack("accepted", "hello follows".into()))
                .await;
            send_hello(config, link, seq, booted).await;
            Outcome::Done
        }
        "start_ota" => {
            let Some(version) = params["version"].as_str().filter(|v| !v.is_empty()) else {
                link.publish(
                    &ack_topic,
                    false,
                    ack("rejected", "params.version is required".into()),
                )
                .await;
                return Outcome::Done;
            };
            link.publish(
                &ack_topic,
                false,
                ack("accepted", format!("updating to {version}")),
            )
            .await;
            let ota_topic = config.topic("ota/status");
            let state = |state: &str, pct: u8| {
                json!({"v": 2, "device_id": config.device_id, "cmd_id": cmd_id, "ts": ts(Utc::now()),
                       "ota_state": state, "progress_pct": pct})
                .to_string()
            };
            for pct in [0u8, 25, 50, 75, 100] {
                link.publish(&ota_topic, false, state("downloading", pct))
                    .await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            link.publish(&ota_topic, false, state("verifying", 100))
                .await;
            link.publish(&ota_topic, false, state("installing", 100))
                .await;
            link.publish(&ota_topic, false, state("rebooting", 100))
                .await;
            config.fw_version = version.to_owned();
            // The new firmware boots and says hello with its version.
            Outcome::Reboot
        }
        "reboot" => {
            link.publish(&ack_topic, false, ack("accepted", "rebooting".into()))
                .await;
            Outcome::Reboot
        }
        "factory_reset" => {
            link.publish(
                &ack_topic,
                false,
                ack("accepted", "restoring defaults".into()),
            )
            .await;
            config.send_interval = Duration::from_secs(10);
            config.hello_interval = Duration::from_secs(60);
            config.sample_interval = Duration::from_secs(1);
            Outcome::Reboot
        }
        other => {
            link.publish(
                &ack_topic,
                false,
                ack("unsupported", format!("unknown command {other:?}")),
            )
            .await;
            Outcome::Done
        }
    }
}
