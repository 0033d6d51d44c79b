//! The `devicehub` command line.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::auth::hash_password;
use crate::configuration::Settings;
use crate::domain::Role;
use crate::registry::users;
use crate::routes::openapi;
use crate::startup::Application;
use crate::{database, logging};

#[derive(Debug, Parser)]
#[command(
    name = "devicehub",
    version,
    about = "Self-hosted device management and telemetry"
)]
pub struct Cli {
    /// A TOML file layered over the built-in defaults (environment variables still win).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service.
    Serve,
    /// Create the database if missing and apply migrations, then exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Ask the devicehub on this machine (`http.bind`'s port on 127.0.0.1) whether it is alive
    /// (`/healthz`), or with --ready ready (`/readyz`): exit 0 if so, 1 if not. For container
    /// health checks, which have no curl in devicehub's image.
    Healthcheck {
        #[arg(long)]
        ready: bool,
    },
    /// Check every configured part with the settings in effect (the same files and environment
    /// as `serve`): PostgreSQL and its migrations, the broker's login and ACL, an InfluxDB probe
    /// point, an S3 probe object, the journal directory, the router, each Shelly and camera, the
    /// metadata file and the settings themselves. One line each, with the fix of what failed;
    /// exit status 1 when anything failed.
    Doctor {
        /// The report as JSON (`{"ok": bool, "checks": [...]}`), for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Manage API users.
    #[command(subcommand)]
    User(UserCommand),
    /// The bronze/silver/gold analytics models.
    #[command(subcommand)]
    Analytics(AnalyticsCommand),
    /// Certificates devicehub's deployments need.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// TLS of the servers devicehub talks to.
    #[command(subcommand)]
    Tls(TlsCommand),
}

#[derive(Debug, Subcommand)]
pub enum TlsCommand {
    /// Connect to URL (https://router/rest, mqtts://broker:8883, host:port) and print the
    /// certificate it presents — subject, issuer, validity, CA flag, SHA-256 fingerprint — and the
    /// setting line that pins it. Nothing is trusted or saved: you decide.
    Fingerprint {
        #[arg(value_name = "URL")]
        url: String,
        /// The setting to print the line for (default: mikrotik).
        #[arg(long, default_value = "mikrotik")]
        setting: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// A private CA and the MQTT broker's server certificate (ca.crt, ca.key, server.crt,
    /// server.key) in --dir, unless they are there already. Give devicehub, the simulator and
    /// devices ca.crt to trust (`mqtt.ca_file`).
    Mqtt {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// A name or address the broker is reached by (repeat, or comma-separate).
        #[arg(
            long = "host",
            value_name = "HOST",
            value_delimiter = ',',
            required = true
        )]
        hosts: Vec<String>,
        /// Replace an existing set.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AnalyticsCommand {
    /// Run the models now: the lake's new bronze files into silver, and silver into gold. By
    /// default the partitions of the last `analytics.lookback_days` whose inputs changed.
    Run {
        /// Rebuild every partition (of the whole lake, or of --from..--to), changed or not.
        #[arg(long)]
        full: bool,
        /// First date (UTC, YYYY-MM-DD) to look at.
        #[arg(long, value_name = "DATE")]
        from: Option<chrono::NaiveDate>,
        /// Last date (UTC, YYYY-MM-DD) to look at; default today (or --from's day).
        #[arg(long, value_name = "DATE")]
        to: Option<chrono::NaiveDate>,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user. The password is read from standard input (first line) when it is not a
    /// terminal, otherwise asked for twice at a prompt.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = clap::value_parser!(Role))]
        role: Role,
    },
}

impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        &[Role::Viewer, Role::Operator, Role::Admin]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Openapi = cli.command {
        print!("{}", openapi::document_json());
        return Ok(());
    }
    if let Command::Tls(TlsCommand::Fingerprint { url, setting }) = &cli.command {
        return tls_fingerprint(url, setting);
    }
    // Needs no settings: it runs before anything is configured (a first start's step).
    if let Command::Certs(CertsCommand::Mqtt { dir, hosts, force }) = &cli.command {
        let (files, written) = crate::certs::mqtt(dir, hosts, *force)?;
        let what = if written {
            "written"
        } else {
            "kept (already there)"
        };
        println!(
            "MQTT TLS {what}: CA {}, server certificate {} for {}",
            files.ca_cert.display(),
            files.server_cert.display(),
            hosts.join(", ")
        );
        return Ok(());
    }
    let settings = Settings::load(cli.config.as_deref())?;
    if let Command::Doctor { json } = cli.command {
        // No log: the report is the output (its checks' failures are in it).
        let report = crate::doctor::run(&settings, std::env::vars().collect()).await;
        match json {
            true => println!("{}", serde_json::to_string_pretty(&report)?),
            false => print!("{}", report.text()),
        }
        std::process::exit(if report.ok { 0 } else { 1 });
    }
    logging::init(&settings.log);
    match cli.command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            database::prepare(&settings.database).await?;
            println!(
                "database {} is migrated",
                database::redacted_url(&settings.database)
            );
        }
        Command::User(UserCommand::Add { username, role }) => {
            validate_username(&username)?;
            let password = read_password()?;
            let hash = hash_password(&password)?;
            let pool = database::prepare(&settings.database).await?;
            users::create(&pool, &username, &hash, role).await?;
            println!("user {username} added with role {role}");
        }
        Command::Analytics(AnalyticsCommand::Run { full, from, to }) => {
            let to = to.or(from);
            if let (Some(from), Some(to)) = (from, to) {
                anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
            }
            let request = crate::analytics::RunRequest {
                full,
                from,
                to,
                silver: true,
                gold: true,
            };
            run_analytics(&settings, &request).await?;
        }
        Command::Healthcheck { ready } => healthcheck(&settings, ready).await?,
        Command::Openapi | Command::Certs(_) | Command::Tls(_) | Command::Doctor { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(())
}

async fn healthcheck(settings: &Settings, ready: bool) -> anyhow::Result<()> {
    let path = if ready { "readyz" } else { "healthz" };
    let url = format!("http://127.0.0.1:{}/{path}", settings.http.bind.port());
    let answer = reqwest::Client::new()
        .get(&url)
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{url}: {status} {body}");
    println!("{body}");
    Ok(())
}

async fn run_analytics(
    settings: &Settings,
    request: &crate::analytics::RunRequest,
) -> anyhow::Result<()> {
    let pool = database::prepare(&settings.database).await?;
    let objects = crate::stores::objects::ObjectStore::from_settings(settings)?;
    objects.prepare().await?;
    let metadata = crate::inventory::MetadataFile::load(&settings.inventory.metadata_csv)?;
    let analytics = crate::analytics::Analytics::new(settings, pool, objects, metadata);
    let bar = ProgressBar(
        indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
        ),
    );
    let report = analytics.run(request, &bar).await?;
    bar.0.finish_and_clear();
    println!(
        "analytics: {} dates, {} new bronze files, {} silver hours ({} rows), {} gold days in {:.1} s \
         (catalog {:.1} s, silver {:.1} s, gold {:.1} s)",
        report.dates,
        report.new_files,
        report.silver_hours,
        report.silver_rows,
        report.gold_days,
        report.seconds,
        report.stage_seconds[0],
        report.stage_seconds[1],
        report.stage_seconds[2],
    );
    for failure in &report.failed {
        eprintln!("not built (the next run tries again): {failure}");
    }
    anyhow::ensure!(
        report.failed.is_empty(),
        "{} partitions could not be built",
        report.failed.len()
    );
    Ok(())
}

/// `devicehub analytics run`'s progress, on standard error when it is a terminal.
struct ProgressBar(indicatif::ProgressBar);

impl crate::analytics::Progress for ProgressBar {
    fn stage(&self, name: &'static str, total: u64) {
        self.0.set_prefix(name);
        self.0.set_length(total);
        self.0.set_position(0);
    }

    fn advance(&self, steps: u64) {
        self.0.inc(steps);
    }
}

fn validate_username(username: &str) -> anyhow::Result<()> {
    crate::routes::users::username_rule(username).map_err(|_| {
        anyhow::anyhow!("username must be 1 to 64 characters of letters, digits and . _ - @")
    })
}

fn read_password() -> anyhow::Result<SecretString> {
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        return Ok(SecretString::from(password));
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Repeat password: ")?;
    anyhow::ensure!(first == second, "the passwords differ");
    let password = SecretString::from(first);
    anyhow::ensure!(!password.expose_secret().is_empty(), "empty password");
    Ok(password)
}

/// `devicehub tls fingerprint URL`.
fn tls_fingerprint(url: &str, setting: &str) -> anyhow::Result<()> {
    let (host, port) = match url::Url::parse(url) {
        Ok(parsed) if parsed.host_str().is_some() => {
            let port = parsed.port().unwrap_or(match parsed.scheme() {
                "mqtts" | "ssl" => 8883,
                _ => 443,
            });
            (parsed.host_str().unwrap_or_default().to_owned(), port)
        }
        _ => match url.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), port.parse().context("not a port")?),
            None => (url.to_owned(), 443),
        },
    };
    let presented =
        crate::clients::pinning::inspect(&host, port, std::time::Duration::from_secs(10))?;
    println!("{host}:{port} presents:");
    println!("  subject      {}", presented.subject);
    println!("  issuer       {}", presented.issuer);
    println!(
        "  valid        {} to {}",
        presented.not_before, presented.not_after
    );
    println!(
        "  CA flag      {}",
        if presented.ca { "CA:TRUE" } else { "CA:FALSE" }
    );
    println!("  chain        {} more certificate(s)", presented.chain_len);
    println!("  fingerprint  {}", presented.fingerprint);
    println!();
    println!("If this is the certificate you expect (compare it on the device itself), pin it:");
    println!(
        "  DEVICEHUB__{}__FINGERPRINT={}",
        setting.to_uppercase(),
        presented.fingerprint
    );
    Ok(())
}
