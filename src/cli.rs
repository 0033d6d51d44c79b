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
use crate::{database, telemetry};

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
    /// Manage API users.
    #[command(subcommand)]
    User(UserCommand),
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
    let settings = Settings::load(cli.config.as_deref())?;
    telemetry::init(&settings.log);
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
        Command::Openapi => unreachable!("handled above"),
    }
    Ok(())
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
