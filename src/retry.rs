//! How long to wait before trying again: exponential from 100 ms, with jitter (backon), so that
//! sinks, connections and replicas that failed together do not retry in lockstep. Every wait
//! between attempts in devicehub (sink writes, broker reconnects, journal appends, task restarts)
//! comes from here.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

const FIRST: Duration = Duration::from_millis(100);
/// The longest wait before jitter; with jitter a wait is at most twice this.
const LONGEST: Duration = Duration::from_secs(5);

/// The delays of one run of attempts; [`Backoff::reset`] after a success starts over.
#[derive(Debug)]
pub struct Backoff {
    delays: ExponentialBackoff,
    waits: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    pub fn new() -> Self {
        Self {
            delays: builder().build(),
            waits: 0,
        }
    }

    /// The next delay: growing, jittered, and never ending.
    pub fn next_delay(&mut self) -> Duration {
        self.waits = self.waits.saturating_add(1);
        self.delays.next().unwrap_or(LONGEST)
    }

    /// Whether no wait was taken since the start or the last reset: the first failure of a run
    /// (the one worth a log line).
    pub fn is_first(&self) -> bool {
        self.waits == 0
    }

    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    pub fn reset(&mut self) {
        self.delays = builder().build();
        self.waits = 0;
    }
}

fn builder() -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(FIRST)
        .with_max_delay(LONGEST)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_a_bound_and_are_jittered() {
        let mut backoff = Backoff::new();
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= FIRST && delays[0] < 2 * FIRST, "{delays:?}");
        assert!(delays.iter().all(|d| *d <= 2 * LONGEST), "{delays:?}");
        assert!(delays[11] >= LONGEST, "reaches the bound: {delays:?}");
        let again: Vec<Duration> = {
            let mut other = Backoff::new();
            (0..12).map(|_| other.next_delay()).collect()
        };
        assert_ne!(delays, again, "two runs do not wait in lockstep");
        backoff.reset();
        assert!(backoff.next_delay() < 2 * FIRST, "reset starts over");
    }
}
