//! The `devicehub-sim` command line; see the library's documentation for what each mode does.

use devicehub_sim::{load, probe, run};

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
    /// Emulate the devices of a scenario file until stopped.
    Run(run::RunArgs),
    /// List the devices a scenario simulates (JSON lines).
    Devices(run::DevicesArgs),
    /// Make the Mikrotik emulator's self-signed certificate (`[mikrotik] tls_cert`) unless it
    /// exists, and print its path (for devicehub's `mikrotik.ca_file`).
    TlsCert(run::DevicesArgs),
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
        Command::Run(args) => run::run(args).await,
        Command::Devices(args) => run::list_devices(args),
        Command::TlsCert(args) => run::tls_cert(args),
        Command::Load(args) => load::run(args).await,
        Command::Drain(args) => load::drain(args).await,
        Command::Probe(args) => probe::run(args).await,
    }
}
