//! Every background task of devicehub runs here, never detached: the API server, the MQTT
//! source and the pipeline, the sinks, liveness, command resends and the publisher's connection.
//!
//! A task that can start afresh ([`Supervisor::spawn`]) is restarted with backoff when it fails,
//! panics or ends; one that fails too often, or one that cannot start afresh
//! ([`Supervisor::spawn_once`]) and ends, stops the process with a message naming it. Nothing
//! disappears unseen.
//!
//! Shutdown (SIGTERM, SIGINT, or a fatal task) goes in waves, within one grace period: first the
//! intake stops (the API finishes its requests; the MQTT source stops reading, the pipeline
//! journals and acknowledges what it holds and syncs the journal), then each sink writes the
//! batch it has, then the publisher sends the ACKs and dead letters it has queued. Tasks still
//! running when the grace period ends are cut short; what they had is in the journal.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::metrics::TaskMetrics;
use crate::retry::Backoff;

/// When a task is told to stop, in shutdown order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wave {
    /// What takes data in: the API, the MQTT source and pipeline, periodic jobs.
    Intake = 0,
    /// The sinks: each writes its current batch.
    Sinks = 1,
    /// Connections others publish through (ACKs, dead letters).
    Outputs = 2,
}

const WAVES: usize = 3;

/// A restartable task failing this often within [`FAILURE_WINDOW`] stops the process.
const MAX_FAILURES: usize = 5;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Why devicehub stopped on its own.
#[derive(Debug, thiserror::Error)]
#[error("task {task:?} {why}")]
pub struct Fatal {
    pub task: String,
    pub why: String,
}

pub struct Supervisor {
    waves: [JoinSet<Result<(), Fatal>>; WAVES],
    tokens: [CancellationToken; WAVES],
    metrics: TaskMetrics,
}

impl Supervisor {
    pub fn new(metrics: TaskMetrics) -> Self {
        Self {
            waves: Default::default(),
            tokens: Default::default(),
            metrics,
        }
    }

    /// Runs a task made by `make`, and makes it anew after it fails, panics or ends (before
    /// shutdown). The token it gets is cancelled when its wave is told to stop; it should then
    /// finish what it holds and return.
    pub fn spawn<F, Fut>(&mut self, name: impl Into<String>, wave: Wave, mut make: F)
    where
        F: FnMut(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let name = name.into();
        let token = self.tokens[wave as usize].clone();
        let metrics = self.metrics.clone();
        metrics.started(&name);
        self.waves[wave as usize].spawn(async move {
            let mut backoff = Backoff::new();
            let mut failures = VecDeque::new();
            loop {
                // Aborted with the supervisor's own task when the grace period is over.
                let outcome = AbortOnDropHandle::new(tokio::spawn(make(token.clone()))).await;
                let why = describe(outcome);
                if token.is_cancelled() {
                    if let Some(why) = why {
                        tracing::warn!(task = %name, "{why} while stopping");
                    }
                    return Ok(());
                }
                let why = why.unwrap_or_else(|| "ended".to_owned());
                let now = Instant::now();
                failures.push_back(now);
                failures.retain(|t| now.duration_since(*t) < FAILURE_WINDOW);
                if failures.len() >= MAX_FAILURES {
                    return Err(Fatal {
                        task: name,
                        why: format!("{why}, {MAX_FAILURES} times within a minute"),
                    });
                }
                tracing::error!(task = %name, "{why}; restarting it");
                metrics.restarted(&name);
                tokio::select! {
                    () = backoff.wait() => {}
                    () = token.cancelled() => return Ok(()),
                }
            }
        });
    }

    /// Runs a task that cannot start afresh (it owns a connection or the journal): if it ends
    /// before shutdown, for whatever reason, devicehub stops.
    pub fn spawn_once<F, Fut>(&mut self, name: impl Into<String>, wave: Wave, make: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let name = name.into();
        self.metrics.listed(&name);
        let token = self.tokens[wave as usize].clone();
        let task = AbortOnDropHandle::new(tokio::spawn(make(token.clone())));
        self.waves[wave as usize].spawn(async move {
            let why = describe(task.await);
            match (token.is_cancelled(), why) {
                (true, Some(why)) => {
                    tracing::warn!(task = %name, "{why} while stopping");
                    Ok(())
                }
                (true, None) => Ok(()),
                (false, why) => Err(Fatal {
                    task: name,
                    why: why.unwrap_or_else(|| "ended".to_owned()),
                }),
            }
        });
    }

    /// Waits for SIGTERM or SIGINT, or for a task to fail for good; then stops every task in
    /// waves within `grace`. `Err` names the task that stopped devicehub.
    pub async fn run(self, grace: Duration) -> Result<(), Fatal> {
        self.run_until(shutdown_signal(), grace).await
    }

    /// [`Supervisor::run`], with `stop` in place of the signals.
    pub async fn run_until(
        mut self,
        stop: impl Future<Output = ()>,
        grace: Duration,
    ) -> Result<(), Fatal> {
        let mut fatal = tokio::select! {
            () = stop => {
                tracing::info!("stopping: taking no more data, finishing what is held");
                None
            }
            fatal = first_fatal(&mut self.waves) => {
                tracing::error!(error = %fatal, "stopping devicehub");
                Some(fatal)
            }
        };
        let deadline = Instant::now() + grace;
        for (tasks, token) in self.waves.iter_mut().zip(&self.tokens) {
            token.cancel();
            loop {
                match tokio::time::timeout_at(deadline, tasks.join_next()).await {
                    Ok(None) => break,
                    Ok(Some(Ok(Err(f)))) => {
                        tracing::warn!(error = %f, "while stopping");
                        fatal.get_or_insert(f);
                    }
                    Ok(Some(_)) => {}
                    Err(_) => {
                        tracing::warn!(
                            tasks = tasks.len(),
                            "grace period over: cutting short what is still running \
                             (its data stays in the journal)"
                        );
                        break;
                    }
                }
            }
        }
        for tasks in &mut self.waves {
            tasks.shutdown().await;
        }
        match fatal {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }
}

async fn first_fatal(waves: &mut [JoinSet<Result<(), Fatal>>; WAVES]) -> Fatal {
    let [intake, sinks, outputs] = waves;
    loop {
        let next = tokio::select! {
            Some(r) = intake.join_next() => r,
            Some(r) = sinks.join_next() => r,
            Some(r) = outputs.join_next() => r,
            else => return std::future::pending().await,
        };
        match next {
            Ok(Ok(())) => {}
            Ok(Err(fatal)) => return fatal,
            Err(e) => {
                return Fatal {
                    task: "supervisor".into(),
                    why: format!("lost a task: {e}"),
                }
            }
        }
    }
}

/// Why a run of a task ended, or `None` when it returned `Ok`.
fn describe(outcome: Result<anyhow::Result<()>, tokio::task::JoinError>) -> Option<String> {
    match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("failed: {e:#}")),
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            Some(format!("panicked: {message}"))
        }
        Err(_) => Some("was cancelled".into()),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_is_restarted_and_counted() {
        let metrics = crate::metrics::Metrics::new();
        let mut supervisor = Supervisor::new(metrics.tasks.clone());
        let runs = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(tokio::sync::Notify::new());
        let (r, d) = (runs.clone(), done.clone());
        supervisor.spawn("flaky", Wave::Sinks, move |token| {
            let (runs, done) = (r.clone(), d.clone());
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first run fails");
                }
                done.notify_one();
                token.cancelled().await;
                Ok(())
            }
        });
        let stopped = supervisor.run_until(done.notified(), Duration::from_secs(5));
        assert!(stopped.await.is_ok());
        assert_eq!(runs.load(Ordering::SeqCst), 2, "ran again after the panic");
        let text = metrics.encode().unwrap();
        assert!(
            text.contains("devicehub_task_restarts_total{task=\"flaky\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_task_that_cannot_restart_stops_the_process_with_its_name() {
        let mut supervisor = Supervisor::new(TaskMetrics::default());
        let stopped = Arc::new(AtomicUsize::new(0));
        let s = stopped.clone();
        supervisor.spawn("bystander", Wave::Sinks, move |token| {
            let stopped = s.clone();
            async move {
                token.cancelled().await;
                stopped.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
        supervisor.spawn_once("source", Wave::Intake, |_| async {
            panic!("connection state lost")
        });
        let fatal = supervisor
            .run_until(std::future::pending(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(fatal.task, "source");
        assert!(fatal.why.contains("connection state lost"), "{fatal}");
        assert_eq!(
            stopped.load(Ordering::SeqCst),
            1,
            "the others were stopped in turn"
        );
    }

    #[tokio::test]
    async fn waves_stop_in_order_and_the_grace_period_bounds_a_stuck_task() {
        let mut supervisor = Supervisor::new(TaskMetrics::default());
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        for (name, wave) in [
            ("output", Wave::Outputs),
            ("sink", Wave::Sinks),
            ("intake", Wave::Intake),
        ] {
            let order = order.clone();
            supervisor.spawn_once(name, wave, move |token| async move {
                token.cancelled().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                order.lock().unwrap().push(name);
                Ok(())
            });
        }
        supervisor.spawn_once("stuck", Wave::Sinks, |_| async {
            std::future::pending::<()>().await;
            Ok(())
        });
        let started = Instant::now();
        let result = supervisor
            .run_until(std::future::ready(()), Duration::from_millis(500))
            .await;
        assert!(result.is_ok());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            *order.lock().unwrap(),
            ["intake", "sink"],
            "outputs never got their turn: the stuck sink used the grace period"
        );
    }
}
