//! devicehub-sim: emulates devicehub's devices and doubles as its load generator.
//!
//! `load` publishes v2 telemetry datagrams from N devices as fast as possible or at a target
//! rate; `drain` is a subscriber that counts and discards, to measure what the broker alone
//! delivers. The device profiles (`run`) come with the simulator issue.

mod load;
mod probe;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "devicehub-sim",
    version,
    about = "Device simulator and load generator for devicehub"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish v2 telemetry from many devices, then print a summary.
    Load(load::LoadArgs),
    /// Subscribe and discard, counting messages and the rate the broker delivers.
    Drain(load::DrainArgs),
    /// Measure publish-to-queryable latency: publish probes, poll InfluxDB until each appears.
    Probe(probe::ProbeArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Load(args) => load::run(args).await,
        Command::Drain(args) => load::drain(args).await,
        Command::Probe(args) => probe::run(args).await,
    }
}
