//! Hears PostgreSQL's `devicehub_live` notifications (the triggers of migration
//! `…000008_live_notifications.sql`) and publishes them on the hub.

use serde::Deserialize;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Hub, LiveEvent, StatusChange};
use crate::registry::{alerts, commands};
use crate::retry::Backoff;

pub const CHANNEL: &str = "devicehub_live";

/// A notification's payload.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Notice {
    Alert { id: i64 },
    Command { cmd_id: Uuid },
    Status(StatusChange),
}

/// Listens until shut down, through PostgreSQL restarts (reconnecting with backoff: an outage
/// must not stop devicehub). PostgreSQL does not keep notifications for a listener that was
/// away: alerts raised meanwhile reach clients that resume with `Last-Event-ID`.
pub async fn run(pool: PgPool, hub: Hub, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut backoff = Backoff::new();
    loop {
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            tracing::debug!("listening for live updates");
            backoff.reset();
            loop {
                let notification = listener.recv().await?;
                if hub.has_event_clients() {
                    announce(&pool, &hub, notification.payload()).await;
                }
            }
        };
        let result: Result<(), sqlx::Error> = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            result = listening => result,
        };
        if let Err(e) = result {
            if backoff.is_first() {
                tracing::warn!(error = %e, "cannot listen for live updates; retrying");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = backoff.wait() => {}
        }
    }
}

async fn announce(pool: &PgPool, hub: &Hub, payload: &str) {
    match serde_json::from_str::<Notice>(payload) {
        Ok(notice) => {
            if let Some(event) = resolve(pool, notice).await {
                hub.publish(event);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, payload, "a live notification this version does not read")
        }
    }
}

/// The event a notice announces: the row it names, read now (gone already: nothing).
async fn resolve(pool: &PgPool, notice: Notice) -> Option<LiveEvent> {
    let found = match notice {
        Notice::Status(change) => return Some(LiveEvent::Status(change)),
        Notice::Alert { id } => alerts::find(pool, id).await.map(LiveEvent::Alert),
        Notice::Command { cmd_id } => commands::find(pool, cmd_id).await.map(LiveEvent::Command),
    };
    match found {
        Ok(event) => Some(event),
        Err(crate::registry::RegistryError::NotFound { .. }) => None,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a live update's row");
            None
        }
    }
}
