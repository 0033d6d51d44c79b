//! Sinks: where readings go. Each sink reads the journal with its own cursor, batches by size and
//! age, retries with backoff, and never loses what it has not written.

pub mod archive;
pub mod influxdb;
pub mod lake;
pub mod registry;
pub mod s3;

use std::time::Duration;

/// Exponential backoff between retries of a failing sink: 100 ms doubling to 10 s.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: Duration::from_millis(100),
        }
    }
}

impl Backoff {
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(10));
    }

    pub fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
}
