//! Records a store refuses for good: kept in PostgreSQL with the reason (queryable through
//! `GET /api/quarantine`), counted (`devicehub_quarantined_total{sink}`), raised as a
//! `sink_rejected` alert on the device, and passed over, so that one bad record never stops a
//! sink.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::PgPool;

use super::{Refusal, SinkError};
use crate::journal::Feed;
use crate::metrics::SinkMetrics;
use crate::registry::quarantine::{self, NewQuarantined};

/// Where refused records go.
#[async_trait]
pub trait Quarantine: Send + Sync {
    /// Keeps the refused records of `sink`; a failure is retried by the driver.
    async fn keep(&self, sink: &'static str, refused: &[Refusal]) -> Result<(), SinkError>;
}

/// The quarantine in PostgreSQL, reading the refused records back from the journal.
pub struct PgQuarantine {
    pool: PgPool,
    journal_id: String,
    feed: Feed,
    metrics: SinkMetrics,
}

impl PgQuarantine {
    pub fn new(pool: PgPool, journal_id: &str, feed: &Feed, metrics: &SinkMetrics) -> Self {
        Self {
            pool,
            journal_id: journal_id.to_owned(),
            feed: feed.clone(),
            metrics: metrics.clone(),
        }
    }
}

#[async_trait]
impl Quarantine for PgQuarantine {
    async fn keep(&self, sink: &'static str, refused: &[Refusal]) -> Result<(), SinkError> {
        let (Some(first), Some(last)) = (
            refused.iter().map(|r| r.journal_no).min(),
            refused.iter().map(|r| r.journal_no).max(),
        ) else {
            return Ok(());
        };
        let records =
            self.feed.read_back(first, last).await.map_err(|e| {
                SinkError::retriable(format!("cannot read refused records back: {e}"))
            })?;
        let wanted: HashSet<u64> = refused.iter().map(|r| r.journal_no).collect();
        for j in records.iter().filter(|j| wanted.contains(&j.record.no)) {
            let reason = refused
                .iter()
                .find(|r| r.journal_no == j.record.no)
                .map_or("", |r| r.reason.as_str());
            let record = NewQuarantined {
                journal_id: &self.journal_id,
                journal_no: j.record.no,
                sink,
                device_id: j.message.device_id().map(|d| d.as_str()),
                topic: &j.record.topic,
                payload: &j.record.payload,
                received_at: j.record.received,
                reason,
            };
            let new = quarantine::add(&self.pool, &record)
                .await
                .map_err(|e| SinkError::retriable(format!("cannot quarantine: {e}")))?;
            if new {
                self.metrics.quarantined(sink);
                tracing::error!(sink, journal_no = j.record.no, topic = %j.record.topic, %reason,
                    "a store refuses a record for good; quarantined it and moved on");
            }
        }
        Ok(())
    }
}
