use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde::Serialize;

#[derive(Args, Clone)]
pub struct LoadArgs {
    /// Broker URL.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    /// Simulated devices (ids `{prefix}-00000` ...).
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// Topic prefix of the iot protocol.
    #[arg(long, default_value = "iot")]
    topic_prefix: String,
    /// Target messages per second over all connections; 0 is as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Stop after this many messages...
    #[arg(long)]
    messages: Option<u64>,
    /// ...or after this many seconds (default 10 when --messages is not given).
    #[arg(long)]
    seconds: Option<u64>,
    /// Measurements per datagram.
    #[arg(long, default_value_t = 3)]
    measurements: usize,
    /// Pad each payload to at least this many bytes (0: no padding).
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// MQTT QoS of the publishes (0 or 1).
    #[arg(long, default_value_t = 1)]
    qos: u8,
    /// Broker connections to publish over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Summary {
    messages_sent: u64,
    points_sent: u64,
    publish_errors: u64,
    seconds: f64,
    messages_per_second: f64,
    points_per_second: f64,
    payload_bytes_avg: u64,
    /// CPU time this process used (user + system), where the OS tells it.
    cpu_seconds: Option<f64>,
}

/// The environment variable naming the PEM CA that an `mqtts://` broker's certificate is checked
/// against (devicehub's `mqtt.ca_file`; `devicehub certs mqtt` writes it); unset: the system's
/// roots.
pub const CA_FILE_VAR: &str = "DEVICEHUB_SIM_MQTT_CA_FILE";

/// Connection options for `broker` (`mqtt://` or `mqtts://`, with `user:password@`).
pub fn mqtt_options(broker: &str, id: String) -> anyhow::Result<MqttOptions> {
    let url = url::Url::parse(broker)?;
    let host = url
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("broker URL has no host"))?;
    let tls = match url.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => anyhow::bail!("broker URL scheme {other:?}: use mqtt:// or mqtts://"),
    };
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let mut options = MqttOptions::new(id, host, port);
    if tls {
        options.set_transport(match std::env::var_os(CA_FILE_VAR) {
            Some(path) => {
                let ca = std::fs::read(&path).map_err(|e| {
                    anyhow::anyhow!("cannot read {CA_FILE_VAR} {}: {e}", path.to_string_lossy())
                })?;
                rumqttc::Transport::tls(ca, None, None)
            }
            None => rumqttc::Transport::tls_with_default_config(),
        });
    }
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(1000)
        .set_max_packet_size(1 << 20, 1 << 20);
    if !url.username().is_empty() {
        options.set_credentials(url.username(), url.password().unwrap_or_default());
    }
    Ok(options)
}

/// One v2 datagram: `seq`, an envelope time, and `measurements` readings of plausible size.
fn datagram(
    device: &str,
    seq: u64,
    measurements: usize,
    pad: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<u8> {
    let ts = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let kinds = [
        ("voltage_dc", "V", 750.0),
        ("current_dc", "A", 120.0),
        ("power_factor", "", 0.97),
        ("frequency", "Hz", 50.0),
    ];
    let mut items = Vec::with_capacity(measurements);
    for i in 0..measurements {
        let (kind, unit, base) = kinds[i % kinds.len()];
        let wobble = ((seq as f64 * 0.37 + i as f64).sin()) * base * 0.01;
        items.push(format!(
            r#"{{"ts":"{ts}","type":"{kind}","val":{:.3},"unit":"{unit}"}}"#,
            base + wobble
        ));
    }
    let mut body = format!(
        r#"{{"v":2,"device_id":"{device}","ts":"{ts}","seq":{seq},"msg_type":"telemetry","measurements":[{}]"#,
        items.join(",")
    );
    if body.len() + 1 < pad {
        body.push_str(&format!(r#","pad":"{}""#, "x".repeat(pad - body.len() - 9)));
    }
    body.push('}');
    body.into_bytes()
}

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let qos = if args.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let connections = args.connections.max(1).min(args.devices.max(1));
    let seconds = match (args.messages, args.seconds) {
        (None, None) => Some(10),
        (_, s) => s,
    };
    let sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = seconds.map(|s| start + Duration::from_secs(s));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let options = mqtt_options(
            &args.broker,
            format!("devicehub-sim-load-{}-{c}", std::process::id()),
        )?;
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        // Wait for the connection before publishing.
        loop {
            match eventloop.poll().await? {
                Event::Incoming(Packet::ConnAck(_)) => break,
                _ => continue,
            }
        }
        // Counts what really left: acknowledged by the broker (QoS 1) or written out (QoS 0).
        let done = Arc::new(AtomicU64::new(0));
        let poller = {
            let done = done.clone();
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::PubAck(_))) if qos == QoS::AtLeastOnce => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Event::Outgoing(Outgoing::Publish(_))) if qos == QoS::AtMostOnce => {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                }
            })
        };
        let args = args.clone();
        let (sent, errors, bytes) = (sent.clone(), errors.clone(), bytes.clone());
        let quota = args
            .messages
            .map(|m| m / connections as u64 + u64::from((c as u64) < m % connections as u64));
        let per_conn_rate = args.rate as f64 / connections as f64;
        tasks.push(tokio::spawn(async move {
            let devices: Vec<String> = (c..args.devices)
                .step_by(connections)
                .map(|i| format!("{}-{i:05}", args.prefix))
                .collect();
            let topics: Vec<String> = devices
                .iter()
                .map(|d| format!("{}/{d}/telemetry", args.topic_prefix))
                .collect();
            let mut seqs = vec![0u64; devices.len()];
            // A device's datagrams carry strictly increasing times, as a real device's do.
            let mut last_ts = vec![chrono::DateTime::<chrono::Utc>::MIN_UTC; devices.len()];
            let mut mine = 0u64;
            let begun = Instant::now();
            let mut d = 0;
            loop {
                if quota.is_some_and(|q| mine >= q) || deadline.is_some_and(|t| Instant::now() >= t)
                {
                    break;
                }
                if per_conn_rate > 0.0 {
                    let due = begun + Duration::from_secs_f64(mine as f64 / per_conn_rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                seqs[d] += 1;
                let ts = chrono::Utc::now().max(last_ts[d] + chrono::Duration::milliseconds(1));
                last_ts[d] = ts;
                let payload = datagram(
                    &devices[d],
                    seqs[d],
                    args.measurements,
                    args.payload_bytes,
                    ts,
                );
                bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
                match client.publish(topics[d].clone(), qos, false, payload).await {
                    Ok(()) => {
                        mine += 1;
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                d = (d + 1) % devices.len();
            }
            // Wait until everything queued has left (at most 60 s), then disconnect.
            let wait_until = Instant::now() + Duration::from_secs(60);
            while done.load(Ordering::Relaxed) < mine && Instant::now() < wait_until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let lost = mine.saturating_sub(done.load(Ordering::Relaxed));
            errors.fetch_add(lost, Ordering::Relaxed);
            sent.fetch_sub(lost, Ordering::Relaxed);
            let _ = client.disconnect().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            poller.abort();
        }));
    }
    let progress = {
        let sent = sent.clone();
        let total = args.messages;
        tokio::spawn(async move {
            use std::io::{IsTerminal, Write};
            let tty = std::io::stderr().is_terminal();
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = sent.load(Ordering::Relaxed);
                let rate = now - last;
                last = now;
                let line = match total {
                    Some(t) => {
                        let done = (now as f64 / t.max(1) as f64).min(1.0);
                        let filled = (done * 30.0) as usize;
                        format!(
                            "[{}{}] {:>3}% {now:>10} messages {rate:>8} msg/s",
                            "#".repeat(filled),
                            ".".repeat(30 - filled),
                            (done * 100.0) as u32
                        )
                    }
                    None => format!("{now:>10} messages {rate:>8} msg/s"),
                };
                // A bar redrawn in place on a terminal; a line per second in logs.
                if tty {
                    eprint!("\r{line}");
                    let _ = std::io::stderr().flush();
                } else {
                    eprintln!("{line}");
                }
            }
        })
    };
    for t in tasks {
        t.await?;
    }
    progress.abort();
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!();
    }
    let seconds = start.elapsed().as_secs_f64() - 0.05;
    let messages = sent.load(Ordering::Relaxed);
    let summary = Summary {
        messages_sent: messages,
        points_sent: messages * args.measurements as u64,
        publish_errors: errors.load(Ordering::Relaxed),
        seconds,
        messages_per_second: messages as f64 / seconds,
        points_per_second: (messages * args.measurements as u64) as f64 / seconds,
        payload_bytes_avg: bytes.load(Ordering::Relaxed) / messages.max(1),
        cpu_seconds: process_cpu_seconds(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "sent {} messages ({} points) in {:.2} s: {:.0} msg/s, {:.0} points/s, avg payload {} B, {} publish errors",
            summary.messages_sent, summary.points_sent, summary.seconds, summary.messages_per_second,
            summary.points_per_second, summary.payload_bytes_avg, summary.publish_errors
        );
    }
    Ok(())
}

#[derive(Args)]
pub struct DrainArgs {
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    /// Topic filter to subscribe to.
    #[arg(long, default_value = "iot/+/telemetry")]
    topic: String,
    #[arg(long, default_value_t = 1)]
    qos: u8,
    /// Stop after this many messages, or after `idle_secs` without any.
    #[arg(long)]
    messages: Option<u64>,
    #[arg(long, default_value_t = 3)]
    idle_secs: u64,
    /// Print a line once subscribed (for scripts that start the load after it).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct DrainSummary {
    messages: u64,
    seconds: f64,
    messages_per_second: f64,
    cpu_seconds: Option<f64>,
}

/// User + system CPU seconds of this process so far, from `/proc/self/stat` (Linux; clock ticks
/// there are USER_HZ, which Linux fixes at 100 for user space). `None` elsewhere.
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: state is
    // field 3 of the whole line, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

pub async fn drain(args: DrainArgs) -> anyhow::Result<()> {
    let qos = if args.qos == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    };
    let options = mqtt_options(
        &args.broker,
        format!("devicehub-sim-drain-{}", std::process::id()),
    )?;
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    client.subscribe(&args.topic, qos).await?;
    let mut count = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    loop {
        let event =
            tokio::time::timeout(Duration::from_secs(args.idle_secs), eventloop.poll()).await;
        match event {
            Err(_) if first.is_some() => break,
            Err(_) => continue,
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => eprintln!("subscribed to {}", args.topic),
            Ok(Ok(Event::Incoming(Packet::Publish(_)))) => {
                first.get_or_insert_with(Instant::now);
                last = Instant::now();
                count += 1;
                if args.messages.is_some_and(|m| count >= m) {
                    break;
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => anyhow::bail!("broker connection failed: {e}"),
        }
    }
    let seconds = first
        .map_or(0.0, |f| last.duration_since(f).as_secs_f64())
        .max(1e-9);
    let summary = DrainSummary {
        messages: count,
        seconds,
        messages_per_second: count as f64 / seconds,
        cpu_seconds: process_cpu_seconds(),
    };
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "received {} messages in {:.2} s: {:.0} msg/s",
            summary.messages, summary.seconds, summary.messages_per_second
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_count_this_process_busy() {
        let before = process_cpu_seconds().expect("Linux /proc/self/stat");
        let started = Instant::now();
        let mut x = 0u64;
        while process_cpu_seconds().unwrap() - before < 0.05 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no CPU time counted"
            );
        }
        std::hint::black_box(x);
    }
}
