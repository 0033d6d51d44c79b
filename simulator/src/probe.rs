//! `probe`: publish-to-queryable latency. A probe device publishes one v2 datagram every
//! interval (QoS 1) while InfluxDB is polled (every 20 ms by default) for the probe's points;
//! each point's latency is from its publish to the first poll that returns it. Run it beside a
//! load to see the latency under that load.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Args;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use serde::Serialize;

use crate::load::mqtt_options;

#[derive(Args, Clone)]
pub struct ProbeArgs {
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    #[arg(long, default_value = "iot")]
    topic_prefix: String,
    /// InfluxDB base URL (its InfluxQL `/query` endpoint is polled).
    #[arg(long, default_value = "http://127.0.0.1:8086")]
    influx_url: String,
    /// Database (v1) or the bucket's DBRP-mapped database (v2).
    #[arg(long, default_value = "iot_metrics")]
    influx_db: String,
    /// InfluxDB v2 token, sent as `Authorization: Token ...`.
    #[arg(long, env = "INFLUX_TOKEN")]
    influx_token: Option<String>,
    /// How long to publish probes.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Publish a single probe and wait until it is queryable (a marker: behind a load that the
    /// broker has acknowledged, it is queryable only after every message of the load).
    #[arg(long, conflicts_with = "seconds")]
    once: bool,
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// How often InfluxDB is asked for the probe's points: the latency's resolution, and the
    /// load the probe itself puts on InfluxDB (about 1 ms of its CPU per query).
    #[arg(long, default_value_t = 20)]
    poll_ms: u64,
    /// After the last probe, wait this long for stragglers.
    #[arg(long, default_value_t = 30)]
    settle_secs: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct ProbeSummary {
    probes: usize,
    seen: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub async fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let device = format!("probe-{}", std::process::id());
    let topic = format!("{}/{device}/telemetry", args.topic_prefix);
    let options = mqtt_options(&args.broker, format!("devicehub-sim-{device}"))?;
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = eventloop.poll().await? {
            break;
        }
    }
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });

    let started = chrono::Utc::now() - chrono::Duration::seconds(1);
    let http = reqwest::Client::new();
    let query = format!(
        "SELECT \"value\" FROM \"iot_telemetry\" WHERE \"device_id\" = '{device}' AND time >= '{}'",
        started.to_rfc3339()
    );
    let mut sent: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut latencies: BTreeMap<u64, Duration> = BTreeMap::new();
    let mut publish = tokio::time::interval(Duration::from_millis(args.interval_ms.max(1)));
    let mut poll = tokio::time::interval(Duration::from_millis(args.poll_ms.max(1)));
    let seconds = if args.once { 0 } else { args.seconds };
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut settle_until = None;
    let mut n = 0u64;
    let probe = |n: u64| {
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        format!(
            r#"{{"v":2,"device_id":"{device}","ts":"{ts}","seq":{n},"msg_type":"telemetry","measurements":[{{"ts":"{ts}","type":"probe","val":{n},"unit":""}}]}}"#
        )
    };
    if args.once {
        n += 1;
        sent.insert(n, Instant::now());
        client
            .publish(&topic, QoS::AtLeastOnce, false, probe(n))
            .await?;
    }
    loop {
        tokio::select! {
            _ = publish.tick(), if Instant::now() < end => {
                n += 1;
                sent.insert(n, Instant::now());
                client.publish(&topic, QoS::AtLeastOnce, false, probe(n)).await?;
            }
            _ = poll.tick() => {
                let mut request = http
                    .get(format!("{}/query", args.influx_url.trim_end_matches('/')))
                    .query(&[("db", args.influx_db.as_str()), ("q", query.as_str())]);
                if let Some(token) = &args.influx_token {
                    request = request.header("Authorization", format!("Token {token}"));
                }
                let now = Instant::now();
                if let Ok(answer) = request.send().await {
                    if let Ok(body) = answer.json::<serde_json::Value>().await {
                        let values = body["results"][0]["series"][0]["values"].as_array().cloned().unwrap_or_default();
                        for row in values {
                            let Some(k) = row.get(1).and_then(serde_json::Value::as_f64) else { continue };
                            let k = k as u64;
                            if let Some(at) = sent.get(&k) {
                                latencies.entry(k).or_insert_with(|| now.duration_since(*at));
                            }
                        }
                    }
                }
                if Instant::now() >= end {
                    let until = *settle_until.get_or_insert(Instant::now() + Duration::from_secs(args.settle_secs));
                    if latencies.len() == sent.len() || Instant::now() >= until {
                        break;
                    }
                }
            }
        }
    }
    let mut ms: Vec<f64> = latencies
        .values()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    let summary = ProbeSummary {
        probes: sent.len(),
        seen: ms.len(),
        p50_ms: percentile(&ms, 50.0),
        p99_ms: percentile(&ms, 99.0),
        max_ms: ms.last().copied().unwrap_or(f64::NAN),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{} probes, {} queryable: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            summary.probes, summary.seen, summary.p50_ms, summary.p99_ms, summary.max_ms
        );
    }
    Ok(())
}
