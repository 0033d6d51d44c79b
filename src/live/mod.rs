//! Live updates for browsers (`GET /api/stream`): what happens to devices as it happens.
//!
//! Two broadcast rings, so that a client that watches no readings never looks at them:
//! - **readings**, handed over by ingest once decoded and accepted (only while someone watches,
//!   so a process without stream clients pays one atomic load per batch);
//! - **events**: connection status changes, new alerts and command status changes, announced by
//!   PostgreSQL triggers on the channel `devicehub_live` ([`listen`]) whichever process made the
//!   change, so API replicas apart from the collector hear them too.
//!
//! In an API process without the collector, readings come from the broker instead: the
//! [`relay`] subscribes to the topics of the devices clients watch ([`Hub::watched`]).
//!
//! Each ring holds a bounded number of entries; a client too slow to keep up skips what it missed
//! and is told how much (`event: lagged`), so no client can make devicehub hold more.

pub mod listen;
pub mod relay;
pub mod sse;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::broadcast;

use crate::domain::{Message, Reading};
use crate::registry::alerts::Alert;
use crate::registry::commands::Command;

/// Entries each ring keeps for clients that fall behind: ingest batches of readings, events.
const RING: usize = 1024;

/// A change of a device's connection status.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StatusChange {
    pub device_id: String,
    pub connection_status: String,
    pub last_seen: Option<DateTime<Utc>>,
}

/// What the events ring carries.
#[derive(Debug)]
pub enum LiveEvent {
    Status(StatusChange),
    Alert(Alert),
    Command(Command),
}

impl LiveEvent {
    /// The device the event is about; `None` for alerts about devicehub itself.
    pub fn device_id(&self) -> Option<&str> {
        match self {
            LiveEvent::Status(s) => Some(&s.device_id),
            LiveEvent::Alert(a) => a.device_id.as_deref(),
            LiveEvent::Command(c) => Some(&c.device_id),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            LiveEvent::Status(_) => Kind::Status,
            LiveEvent::Alert(_) => Kind::Alert,
            LiveEvent::Command(_) => Kind::Command,
        }
    }
}

/// The kinds of update a client may ask for (`kinds=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Reading,
    Status,
    Alert,
    Command,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Reading, Kind::Status, Kind::Alert, Kind::Command];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reading" | "readings" => Some(Kind::Reading),
            "status" => Some(Kind::Status),
            "alert" | "alerts" => Some(Kind::Alert),
            "command" | "commands" => Some(Kind::Command),
            _ => None,
        }
    }

    /// The SSE event name.
    pub fn event_name(self) -> &'static str {
        match self {
            Kind::Reading => "readings",
            Kind::Status => "status",
            Kind::Alert => "alert",
            Kind::Command => "command",
        }
    }
}

/// The hub every process has: ingest and the PostgreSQL listener publish, stream clients
/// subscribe. Cloning shares it.
#[derive(Clone)]
pub struct Hub {
    readings: broadcast::Sender<Arc<[Reading]>>,
    events: broadcast::Sender<Arc<LiveEvent>>,
    clients: Arc<AtomicUsize>,
    max_clients: usize,
    /// Streams open per user, and the most one user may hold: one viewer cannot take every
    /// place.
    per_user: Arc<Mutex<HashMap<String, usize>>>,
    max_per_user: usize,
    /// `devicehub_stream_clients`.
    gauge: prometheus_client::metrics::gauge::Gauge,
    watched: Arc<Watched>,
    /// Cancelled when the server stops: streams end, so that a graceful stop need not wait for
    /// browsers to leave.
    closing: tokio_util::sync::CancellationToken,
}

/// The devices whose readings clients watch, with how many clients watch each; the relay
/// follows its changes.
#[derive(Default)]
struct Watched {
    devices: Mutex<HashMap<String, usize>>,
    changed: tokio::sync::Notify,
}

impl Hub {
    pub fn new(
        (max_clients, max_per_user): (usize, usize),
        gauge: prometheus_client::metrics::gauge::Gauge,
    ) -> Self {
        Self {
            readings: broadcast::channel(RING).0,
            events: broadcast::channel(RING).0,
            clients: Arc::default(),
            max_clients,
            per_user: Arc::default(),
            max_per_user,
            gauge,
            watched: Arc::default(),
            closing: Default::default(),
        }
    }

    /// Ends every stream (the server is stopping).
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// The devices whose readings someone watches now.
    pub fn watched(&self) -> HashSet<String> {
        self.watched
            .devices
            .lock()
            .map(|d| d.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Waits until the watched devices may have changed.
    pub async fn watched_changed(&self) {
        self.watched.changed.notified().await;
    }

    /// Hands the readings of accepted messages to the clients watching readings, if any.
    pub fn publish_readings<'a>(&self, messages: impl IntoIterator<Item = &'a Message>) {
        if self.readings.receiver_count() == 0 {
            return;
        }
        let readings: Vec<Reading> = messages
            .into_iter()
            .flat_map(|m| match m {
                Message::Telemetry { readings, .. }
                | Message::Hello { readings, .. }
                | Message::Shelly { readings, .. } => readings.as_slice(),
                _ => &[],
            })
            .cloned()
            .collect();
        if !readings.is_empty() {
            let _ = self.readings.send(readings.into());
        }
    }

    pub fn publish(&self, event: LiveEvent) {
        let _ = self.events.send(Arc::new(event));
    }

    /// Whether anyone listens for events (the listener skips reading rows otherwise).
    pub fn has_event_clients(&self) -> bool {
        self.events.receiver_count() > 0
    }

    /// A new client's subscriptions for `user` (`None`: auth is off), or why there is none.
    pub fn subscribe(
        &self,
        kinds: &HashSet<Kind>,
        user: Option<&str>,
    ) -> Result<Subscription, Refused> {
        if let Some(user) = user {
            let mut per_user = self.per_user.lock().map_err(|_| Refused::Full)?;
            let open = per_user.entry(user.to_owned()).or_default();
            if *open >= self.max_per_user {
                return Err(Refused::UserFull(self.max_per_user));
            }
            *open += 1;
        }
        let seat = UserSeat {
            user: user.map(str::to_owned),
            per_user: self.per_user.clone(),
        };
        let mut current = self.clients.load(Ordering::Relaxed);
        loop {
            if current >= self.max_clients {
                return Err(Refused::Full);
            }
            match self.clients.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        let events = kinds.iter().any(|k| *k != Kind::Reading);
        self.gauge.inc();
        Ok(Subscription {
            _seat: seat,
            readings: kinds
                .contains(&Kind::Reading)
                .then(|| self.readings.subscribe()),
            events: events.then(|| self.events.subscribe()),
            clients: self.clients.clone(),
            gauge: self.gauge.clone(),
            watched: self.watched.clone(),
            watching: HashSet::new(),
            closing: self.closing.clone(),
        })
    }

    /// Stream clients connected now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }
}

/// Why a stream cannot open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `stream.max_clients` are open.
    Full,
    /// The user holds `stream.max_clients_per_user` streams.
    UserFull(usize),
}

/// A user's place among its streams, given back when the stream ends.
struct UserSeat {
    user: Option<String>,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for UserSeat {
    fn drop(&mut self) {
        let (Some(user), Ok(mut per_user)) = (&self.user, self.per_user.lock()) else {
            return;
        };
        if let Some(open) = per_user.get_mut(user) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                per_user.remove(user);
            }
        }
    }
}

/// One client's receivers; dropping it frees its place (and its watch of devices' readings).
pub struct Subscription {
    _seat: UserSeat,
    pub readings: Option<broadcast::Receiver<Arc<[Reading]>>>,
    pub events: Option<broadcast::Receiver<Arc<LiveEvent>>>,
    clients: Arc<AtomicUsize>,
    gauge: prometheus_client::metrics::gauge::Gauge,
    watched: Arc<Watched>,
    watching: HashSet<String>,
    pub closing: tokio_util::sync::CancellationToken,
}

impl Subscription {
    /// Watches the readings of `devices` (instead of those watched before), if this client
    /// takes readings.
    pub fn watch(&mut self, devices: HashSet<String>) {
        if self.readings.is_none() || devices == self.watching {
            return;
        }
        let before = std::mem::replace(&mut self.watching, devices);
        self.rewatch(&before);
    }

    /// Moves this client's counts from the devices of `before` to those it watches now.
    fn rewatch(&self, before: &HashSet<String>) {
        let Ok(mut watched) = self.watched.devices.lock() else {
            return;
        };
        let mut changed = false;
        for gone in before.difference(&self.watching) {
            if let Some(n) = watched.get_mut(gone) {
                *n -= 1;
                if *n == 0 {
                    watched.remove(gone);
                    changed = true;
                }
            }
        }
        for new in self.watching.difference(before) {
            let n = watched.entry(new.clone()).or_insert(0);
            changed |= *n == 0;
            *n += 1;
        }
        drop(watched);
        if changed {
            self.watched.changed.notify_one();
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.clients.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
        let before = std::mem::take(&mut self.watching);
        // Watching nothing now: every device watched before loses this client.
        self.rewatch(&before);
    }
}
