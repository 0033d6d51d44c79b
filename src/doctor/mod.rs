//! `devicehub doctor` and `GET /api/system/checks`: with the settings in effect, every part
//! devicehub is configured to talk to is tried the way the service uses it — a login, a probe
//! written and read back, a subscription the ACL must allow — and each gives one line: ok, or
//! what failed and the setting or command that fixes it. Nothing is left behind (the probe
//! object is deleted, the probe point is in its own measurement, `devicehub_doctor`), and a
//! running service is not disturbed (the checks open their own connections).
//!
//! The checks run concurrently, each within [`CHECK_TIMEOUT`]; a part that is not configured is
//! not checked (no router URL, no router line).

mod common;
mod network;
mod stores;

use std::future::Future;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::configuration::Settings;

/// The longest any one check may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, but something deserves a look (a setting that does nothing here, little space).
    Warning,
    Failed,
}

/// One part, checked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Check {
    /// What was checked: `database`, `broker`, `influxdb`, `archive`, `journal`, `router`,
    /// `shelly HOST`, `camera HOST`, `metadata`, `settings`.
    pub name: String,
    pub status: Status,
    /// What was found, or what failed.
    pub detail: String,
    /// The setting or command that fixes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn failed(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            status: Status::Failed,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn warning(
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            status: Status::Warning,
            ..Self::failed(name, detail, fix)
        }
    }
}

/// Every check, in a stable order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Report {
    /// No check failed (warnings allowed).
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    fn of(checks: Vec<Check>) -> Self {
        Self {
            ok: checks.iter().all(|c| c.status != Status::Failed),
            checks,
        }
    }

    /// One line per check, for a terminal: `ok      database     PostgreSQL …`, and for a
    /// failure the fix on the next line.
    pub fn text(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for check in &self.checks {
            let status = match check.status {
                Status::Ok => "ok",
                Status::Warning => "WARNING",
                Status::Failed => "FAILED",
            };
            out.push_str(&format!(
                "{status:<8}{:<width$}  {}\n",
                check.name, check.detail
            ));
            if let Some(fix) = &check.fix {
                out.push_str(&format!("{:<8}{:<width$}  fix: {fix}\n", "", ""));
            }
        }
        let failed = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Failed)
            .count();
        out.push_str(&match failed {
            0 => format!("all {} checks passed\n", self.checks.len()),
            n => format!("{n} of {} checks failed\n", self.checks.len()),
        });
        out
    }
}

/// Runs every check for `settings`; `env` is the process's environment (for the settings
/// check: unknown `DEVICEHUB__` variables).
pub async fn run(settings: &Settings, env: Vec<(String, String)>) -> Report {
    let groups: Vec<Vec<Check>> = futures_util::future::join_all([
        boxed(async { common::settings(settings, env) }),
        boxed(one("database", stores::database(settings))),
        boxed(one("broker", stores::broker(settings))),
        boxed(one("influxdb", stores::influxdb(settings))),
        boxed(one("archive", stores::archive(settings))),
        boxed(blocking(settings, |s| {
            stores::journal(s).into_iter().collect()
        })),
        boxed(async {
            match settings.mikrotik.url() {
                Some(_) => vec![bounded("router", network::router(settings)).await],
                None => Vec::new(),
            }
        }),
        boxed(network::shellys(settings)),
        boxed(network::cameras(settings)),
        boxed(blocking(settings, |s| vec![network::metadata(s)])),
    ])
    .await;
    Report::of(groups.into_iter().flatten().collect())
}

type Boxed<'a> = std::pin::Pin<Box<dyn Future<Output = Vec<Check>> + Send + 'a>>;

fn boxed<'a>(f: impl Future<Output = Vec<Check>> + Send + 'a) -> Boxed<'a> {
    Box::pin(f)
}

/// A check that reads and writes files, off the async threads.
async fn blocking(
    settings: &Settings,
    check: impl FnOnce(&Settings) -> Vec<Check> + Send + 'static,
) -> Vec<Check> {
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || check(&settings))
        .await
        .unwrap_or_else(|e| {
            vec![Check::failed(
                "doctor",
                e.to_string(),
                "report this as a bug",
            )]
        })
}

async fn one(name: &'static str, check: impl Future<Output = Check>) -> Vec<Check> {
    vec![bounded(name, check).await]
}

/// `check`, or a failure when it takes longer than [`CHECK_TIMEOUT`].
pub(crate) async fn bounded(name: &str, check: impl Future<Output = Check>) -> Check {
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(check) => check,
        Err(_) => Check::failed(
            name,
            format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
            "is the server up and reachable from here? (its address setting)",
        ),
    }
}
