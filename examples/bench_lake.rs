//! Writes synthetic readings into a lake directory exactly as the collector does (its
//! `LakeWindow` writer: one Parquet file per date and journal window), for the analytics
//! benchmark (`scripts/bench-analytics.sh`).
//!
//!   cargo run --release --example bench_lake -- DIR READINGS END [FIRST_JOURNAL_NO]
//!
//! A fleet of 1,000 devices, 5 metrics each, one reading of each every 30 s, the newest at END
//! (RFC 3339), the collector's 2-second windows; a third are seed 002 plugs (per-interval
//! energy), a third Shelly channels (Wh counters), a third AC meters (kWh counters). One reading
//! in a thousand arrives twice (a broker redelivery, in a later window).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark tool: a failure ends it with the message"
)]

use chrono::{DateTime, TimeDelta, Utc};
use devicehub::domain::{DeviceId, MetricName, Reading, Unit};
use devicehub::lake::{LakeRow, LakeWindow};

const DEVICES: u64 = 1000;
const EVERY_S: i64 = 30;
const WINDOW_S: i64 = 2;

const KINDS: [(&str, [(&str, &str); 5]); 3] = [
    (
        "plug",
        [
            ("temperature", "°C"),
            ("power_usage", "W"),
            ("energy_consumption_wh", "Wh"),
            ("humidity", "%"),
            ("rssi", "dBm"),
        ],
    ),
    (
        "shelly",
        [
            ("switch0.power", "W"),
            ("switch0.energy", "Wh"),
            ("switch0.voltage", "V"),
            ("switch0.current", "A"),
            ("switch0.temperature", "°C"),
        ],
    ),
    (
        "meter",
        [
            ("voltage_ac", "V"),
            ("current_ac", "A"),
            ("frequency", "Hz"),
            ("power_factor", ""),
            ("energy", "kWh"),
        ],
    ),
];

fn value(kind: usize, metric: usize, step: i64, device: u64) -> f64 {
    let noise = ((step as u64).wrapping_mul(6364136223846793005)
        ^ device.wrapping_mul(1442695040888963407))
        % 1000;
    let noise = noise as f64 / 1000.0;
    let hours = (step * EVERY_S) as f64 / 3600.0;
    match (kind, metric) {
        (0, 0) => 20.0 + 3.0 * noise,
        (0, 1) => 800.0 + 400.0 * noise,
        (0, 2) => (800.0 + 400.0 * noise) * EVERY_S as f64 / 3600.0,
        (0, 3) => 40.0 + 10.0 * noise,
        (0, 4) => -60.0 - 10.0 * noise,
        (1, 0) => 500.0 + 100.0 * noise,
        (1, 1) => 550.0 * hours,
        (1, 2) => 229.0 + 2.0 * noise,
        (1, 3) => 2.3 + 0.2 * noise,
        (1, 4) => 40.0 + 5.0 * noise,
        (2, 0) => 25_000.0 + 200.0 * noise,
        (2, 1) => 100.0 + 20.0 * noise,
        (2, 2) => 50.0 + 0.05 * noise,
        (2, 3) => 0.95 + 0.04 * noise,
        _ => 2.5 * hours,
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() >= 4,
        "usage: bench_lake DIR READINGS END [FIRST_JOURNAL_NO]"
    );
    let dir = std::path::PathBuf::from(&args[1]);
    let readings: u64 = args[2].parse()?;
    let end: DateTime<Utc> = args[3].parse()?;
    let mut journal_no: u64 = args.get(4).map(|n| n.parse()).transpose()?.unwrap_or(1);
    let per_step = DEVICES * 5;
    let steps = readings.div_ceil(per_step) as i64;
    let start = end - TimeDelta::seconds((steps - 1) * EVERY_S);
    let ids: Vec<DeviceId> = (0..DEVICES)
        .map(|d| DeviceId::parse(&format!("bench-{d:04}")))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    let metrics: Vec<Vec<(MetricName, Option<Unit>)>> = KINDS
        .iter()
        .map(|(_, ms)| {
            ms.iter()
                .map(|(m, u)| {
                    (
                        MetricName::parse(m).expect("metric"),
                        (!u.is_empty()).then(|| Unit::parse(u).expect("unit")),
                    )
                })
                .collect()
        })
        .collect();
    // Each device reports at its own offset within the 30 s, so windows hold a steady share.
    let mut written = (0u64, 0usize);
    let mut redelivered: Vec<Reading> = Vec::new();
    let windows = steps * EVERY_S / WINDOW_S;
    for w in 0..windows {
        let from = start + TimeDelta::seconds(w * WINDOW_S);
        let mut batch: Vec<Reading> = std::mem::take(&mut redelivered);
        for device in 0..DEVICES {
            let offset = (device as i64 * EVERY_S * 1000 / DEVICES as i64) / 1000;
            let since = (from - start).num_seconds();
            // The device's latest report before the window ends: in it, or in an earlier one.
            let step = (since + WINDOW_S - 1 - offset).div_euclid(EVERY_S);
            let at = step * EVERY_S + offset;
            if at < since || at >= since + WINDOW_S || step < 0 || step >= steps {
                continue;
            }
            let kind = (device % 3) as usize;
            for (m, (metric, unit)) in metrics[kind].iter().enumerate() {
                let reading = Reading {
                    device_id: ids[device as usize].clone(),
                    time: start + TimeDelta::seconds(at),
                    metric: metric.clone(),
                    value: value(kind, m, step, device),
                    unit: unit.clone(),
                };
                if (device + step as u64 + m as u64).is_multiple_of(1000) {
                    redelivered.push(reading.clone());
                }
                batch.push(reading);
            }
        }
        if batch.is_empty() {
            continue;
        }
        let received = from + TimeDelta::milliseconds(WINDOW_S * 1000 + 300);
        let rows: Vec<LakeRow<'_>> = batch
            .iter()
            .enumerate()
            .map(|(i, reading)| LakeRow {
                reading,
                device_type: Some(
                    KINDS[(reading.device_id.as_str()[6..].parse::<u64>().unwrap_or(0) % 3)
                        as usize]
                        .0,
                ),
                seq: None,
                received_at: received,
                topic: "iot/bench/telemetry",
                journal_no: journal_no + i as u64,
            })
            .collect();
        let mut window = LakeWindow::new(journal_no);
        window.add(&rows)?;
        for (key, bytes, _) in window.finish()? {
            let path = dir.join(&key);
            std::fs::create_dir_all(path.parent().expect("a folder"))?;
            std::fs::write(&path, bytes)?;
            written.1 += 1;
        }
        written.0 += batch.len() as u64;
        journal_no += batch.len() as u64;
    }
    println!(
        "{} readings in {} files from {start} to {end}; next journal number {journal_no}",
        written.0, written.1
    );
    Ok(())
}
