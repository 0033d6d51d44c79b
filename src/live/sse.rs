//! One stream client: its filter, what it missed (alerts after `Last-Event-ID`), heartbeats,
//! and the Server-Sent Events it is sent.
//!
//! Events (`event:` name, `data:` one JSON line):
//! - `readings`: `[{"time","device_id","metric","value","unit"}]`, as the metrics API's points;
//! - `status`: `{"device_id","connection_status","last_seen"}`;
//! - `alert`: an alert as `GET /api/alerts` lists it, with `id:` its id (what `Last-Event-ID`
//!   resumes from);
//! - `command`: a command as its history lists it, on every change of status;
//! - `lagged`: `{"missed": n}` when the client fell behind and skipped `n` entries;
//! - `heartbeat`: `{"time"}` every `stream.heartbeat_secs`;
//! - `end`: `{"error"}` when devicehub ends the stream (the user lost the right to look).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{Kind, LiveEvent, Subscription};
use crate::auth::{Auth, Claims};
use crate::domain::Reading;
use crate::registry::{alerts, devices};

/// Alerts replayed to a resuming client at most (the newest of those it missed); the others
/// are in `GET /api/alerts`.
pub const MAX_REPLAY: i64 = 500;

/// Which devices and kinds of update a client asked for.
#[derive(Debug, Clone)]
pub struct Filter {
    pub kinds: HashSet<Kind>,
    /// Devices asked for by id.
    pub devices: HashSet<String>,
    /// Devices asked for by type; their ids are looked up, again at each heartbeat.
    pub device_type: Option<String>,
    typed: HashSet<String>,
}

impl Filter {
    pub fn new(
        kinds: HashSet<Kind>,
        devices: HashSet<String>,
        device_type: Option<String>,
    ) -> Self {
        Self {
            kinds,
            devices,
            device_type,
            typed: HashSet::new(),
        }
    }

    /// Whether the client names no devices: it then hears about all of them (readings aside).
    pub fn selects_all(&self) -> bool {
        self.devices.is_empty() && self.device_type.is_none()
    }

    fn admits(&self, device_id: Option<&str>) -> bool {
        if self.selects_all() {
            return true;
        }
        device_id.is_some_and(|d| self.devices.contains(d) || self.typed.contains(d))
    }

    fn selected_set(&self) -> HashSet<String> {
        self.devices.union(&self.typed).cloned().collect()
    }

    /// The selected devices (`None`: all of them).
    fn selected(&self) -> Option<Vec<String>> {
        (!self.selects_all()).then(|| self.devices.iter().chain(&self.typed).cloned().collect())
    }

    async fn resolve_type(&mut self, pool: &PgPool) {
        let Some(device_type) = &self.device_type else {
            return;
        };
        match devices::ids_of_type(pool, device_type).await {
            Ok(ids) => self.typed = ids.into_iter().collect(),
            Err(e) => tracing::warn!(error = %e, "cannot look up the devices of a stream's type"),
        }
    }
}

/// Who is watching, checked again at each heartbeat (`None`: auth is off).
pub struct Watcher {
    pub auth: Arc<Auth>,
    pub claims: Option<Claims>,
}

/// A stream client's state; [`Client::next`] gives its next chunk of the response.
pub struct Client {
    subscription: Subscription,
    filter: Filter,
    pool: PgPool,
    watcher: Watcher,
    replay: VecDeque<alerts::Alert>,
    /// Live alerts at or below this id were replayed already.
    replayed_through: i64,
    heartbeat: tokio::time::Interval,
    preamble: Option<Bytes>,
    ended: bool,
}

impl Client {
    /// A client that resumes after alert `last_event_id`, if given.
    pub async fn start(
        mut subscription: Subscription,
        mut filter: Filter,
        (pool, watcher): (PgPool, Watcher),
        last_event_id: Option<i64>,
        heartbeat: Duration,
    ) -> Result<Self, sqlx::Error> {
        filter.resolve_type(&pool).await;
        subscription.watch(filter.selected_set());
        // Subscribed before reading what was missed, so that nothing falls between the two;
        // what arrives live and was replayed is skipped by id.
        let mut replay = VecDeque::new();
        let mut replayed_through = 0;
        if let (Some(after), true) = (last_event_id, filter.kinds.contains(&Kind::Alert)) {
            let missed =
                alerts::after(&pool, after, filter.selected().as_deref(), MAX_REPLAY).await?;
            replayed_through = missed.last().map_or(after, |a| a.id);
            replay.extend(missed);
        }
        let mut heartbeat = tokio::time::interval(heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.reset();
        // How long a browser waits before reconnecting, and a first line so that proxies and
        // clients see the stream open at once.
        let preamble = Bytes::from_static(b"retry: 3000\n: devicehub live stream\n\n");
        Ok(Self {
            subscription,
            filter,
            pool,
            watcher,
            replay,
            replayed_through,
            heartbeat,
            preamble: Some(preamble),
            ended: false,
        })
    }

    /// The next part of the response; `None` ends it.
    pub async fn next(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        if let Some(preamble) = self.preamble.take() {
            return Some(preamble);
        }
        if let Some(alert) = self.replay.pop_front() {
            return Some(frame("alert", Some(alert.id), &alert));
        }
        loop {
            tokio::select! {
                () = self.subscription.closing.cancelled() => return None,
                batch = recv(&mut self.subscription.readings) => match batch {
                    Ok(batch) => {
                        if let Some(chunk) = self.readings(&batch) {
                            return Some(chunk);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => return Some(lagged(missed)),
                    Err(RecvError::Closed) => return None,
                },
                event = recv(&mut self.subscription.events) => match event {
                    Ok(event) => {
                        if let Some(chunk) = self.event(&event) {
                            return Some(chunk);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => return Some(lagged(missed)),
                    Err(RecvError::Closed) => return None,
                },
                _ = self.heartbeat.tick() => return Some(self.beat().await),
            }
        }
    }

    fn readings(&self, batch: &[Reading]) -> Option<Bytes> {
        let points: Vec<Point> = batch
            .iter()
            .filter(|r| self.filter.admits(Some(r.device_id.as_str())))
            .map(Point::from)
            .collect();
        (!points.is_empty()).then(|| frame(Kind::Reading.event_name(), None, &points))
    }

    fn event(&self, event: &LiveEvent) -> Option<Bytes> {
        let kind = event.kind();
        if !self.filter.kinds.contains(&kind) || !self.filter.admits(event.device_id()) {
            return None;
        }
        Some(match event {
            LiveEvent::Status(s) => frame(kind.event_name(), None, s),
            LiveEvent::Alert(a) if a.id <= self.replayed_through => return None,
            LiveEvent::Alert(a) => frame(kind.event_name(), Some(a.id), a),
            LiveEvent::Command(c) => frame(kind.event_name(), None, c),
        })
    }

    /// A heartbeat, after checking that the user may still look and refreshing the devices of
    /// the type asked for; or the end of the stream.
    async fn beat(&mut self) -> Bytes {
        if let Some(claims) = &self.watcher.claims {
            if claims
                .until
                .is_some_and(|until| crate::auth::token_now() >= until)
            {
                self.ended = true;
                return frame(
                    "end",
                    None,
                    &serde_json::json!({ "error": "the access token this stream was opened with has expired; open it again with a new ticket" }),
                );
            }
            if let Err(e) = self.watcher.auth.caller_of(claims, Some(&self.pool)).await {
                self.ended = true;
                let why = match e {
                    crate::error::ApiError::Unauthorized(reason) => reason.to_owned(),
                    other => other.to_string(),
                };
                return frame("end", None, &serde_json::json!({ "error": why }));
            }
        }
        self.filter.resolve_type(&self.pool).await;
        self.subscription.watch(self.filter.selected_set());
        frame(
            "heartbeat",
            None,
            &serde_json::json!({ "time": Utc::now() }),
        )
    }
}

/// The next entry of a ring the client subscribed to; never, for one it did not.
async fn recv<T: Clone>(rx: &mut Option<broadcast::Receiver<T>>) -> Result<T, RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn lagged(missed: u64) -> Bytes {
    frame("lagged", None, &serde_json::json!({ "missed": missed }))
}

/// One SSE event. JSON from serde_json is one line, so one `data:` line carries it.
fn frame(event: &str, id: Option<i64>, data: &impl Serialize) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    if let Some(id) = id {
        out.extend_from_slice(b"\nid: ");
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    }
    out.extend_from_slice(b"\ndata: ");
    if serde_json::to_writer(&mut out, data).is_err() {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b"\n\n");
    out.into()
}

/// A reading as the metrics API answers it.
#[derive(Serialize)]
struct Point<'a> {
    time: DateTime<Utc>,
    device_id: &'a str,
    metric: &'a str,
    value: f64,
    unit: &'a str,
}

impl<'a> From<&'a Reading> for Point<'a> {
    fn from(r: &'a Reading) -> Self {
        Point {
            time: r.time,
            device_id: r.device_id.as_str(),
            metric: r.metric.as_str(),
            value: r.value,
            unit: r.unit.as_ref().map_or("", |u| u.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_one_event_each() {
        let f = frame("alert", Some(42), &serde_json::json!({"message": "a\nb"}));
        assert_eq!(
            std::str::from_utf8(&f).unwrap(),
            "event: alert\nid: 42\ndata: {\"message\":\"a\\nb\"}\n\n"
        );
    }

    #[test]
    fn a_filter_without_devices_admits_all_and_one_with_devices_only_those() {
        let all = Filter::new(HashSet::from([Kind::Alert]), HashSet::new(), None);
        assert!(all.admits(Some("x")) && all.admits(None));
        let some = Filter::new(
            HashSet::from([Kind::Alert]),
            HashSet::from(["a".to_owned()]),
            None,
        );
        assert!(some.admits(Some("a")));
        assert!(!some.admits(Some("b")));
        // Alerts about devicehub itself name no device.
        assert!(!some.admits(None));
    }
}
