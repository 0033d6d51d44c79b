//! The Shelly poller: a source beside MQTT. Every `shelly.interval_s` each Shelly host is asked
//! for its status over HTTP — Gen2/Gen3 `GET /rpc/Shelly.GetStatus`, Gen1 `GET /status` — and
//! every relay or meter channel is handed to ingest as the message a Gen2 device pushes over MQTT
//! (`{id}/status/switch:N`), so polled and pushed readings take the same decoder, journal and
//! sinks (InfluxDB tags each with its `channel`).
//!
//! The hosts ([`ShellyFleet`]): those the inventory takes for Shelly devices (metadata type
//! `shelly`, or a DHCP host name starting `shelly`, on `shelly.port`) and those configured
//! (`shelly.hosts`, `shelly.gen1_hosts`), looked up again every interval; each is polled by its
//! own task with its own timeout, so one dead host never delays the others.
//!
//! Nothing a host says about itself is believed: its identity is pinned, not claimed. A host is
//! identified once (Gen2 `Shelly.GetDeviceInfo`, else Gen1 `/shelly`) and its answer checked
//! against what devicehub already knows — the MAC the router leased its address to, and the
//! registry's record of the device id it names (a device of another type, or one pinned to
//! another MAC or generation). A mismatch is refused with an `identity_conflict` alert and the
//! host is not polled. A new device is registered as type `shelly` with its MAC, address, model,
//! generation and firmware (pinned from then on); an existing one learns only the address it is
//! reached at (`http`, from the router's lease or the configuration, never from an answer).
//! Gen1 meters count energy in watt-minutes; they are converted to Wh.
//!
//! Credentials: with `shelly.password` set, configured hosts and those the metadata file adopts
//! answer a 401 with what their challenge asks for — digest auth (Gen2: user `admin`, SHA-256),
//! or basic auth (`shelly.username`) for `shelly.gen1_hosts` only. A host found by its DHCP
//! name alone is polled without the password (status only) until adopted.
//!
//! Push or poll, per device, decided when it is identified, so that its first reading comes
//! within one interval: the device is asked (Gen2+ `Mqtt.GetConfig`, as Shelly documents it).
//! One that says it publishes its status over MQTT (`enable` and `status_ntf` or `rpc_ntf`) is
//! not polled while its status arrives that way (looked at again every six intervals; polled if
//! it stays silent), so its readings are never stored twice. One that says it does not, and
//! every Gen1 (devicehub decodes no Gen1 MQTT topics), is polled at once. One that will not say
//! (a host polled without the password) is watched for one interval: polled unless its status
//! arrived over MQTT meanwhile.
//!
//! Every poll is counted (`devicehub_polls_total{source="shelly",outcome=...}`: ok, timeout,
//! connection, status, malformed). A registered host that fails
//! `shelly.failures_before_offline` polls in a row is marked offline with an alert and then
//! polled less often (the interval doubling up to five minutes) until it answers; its next
//! reading brings it back online.

mod delivery;
mod identity;
pub mod status;

pub use delivery::{delivery_of, Delivery};

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clients::shelly::{ShellyClient, ShellyError, ShellyHost};
use crate::configuration::ShellySettings;
use crate::domain::NewDevice;
use crate::inventory::Inventory;
use crate::metrics::PollMetrics;
use crate::pipeline::Incoming;
use crate::registry;
pub use identity::Origin;
pub use status::{gen1_identity, gen1_messages, gen2_identity, gen2_messages, Identity};

/// What every poller of a fleet shares.
#[derive(Clone)]
pub struct ShellyContext {
    client: ShellyClient,
    /// The same without the password, for hosts found by their DHCP name alone.
    anonymous: ShellyClient,
    interval: Duration,
    failures_before_offline: u32,
    pool: PgPool,
    handoff: mpsc::Sender<Incoming>,
    metrics: PollMetrics,
}

impl ShellyContext {
    pub fn new(
        (settings, networks): (
            &ShellySettings,
            std::sync::Arc<crate::clients::DeviceNetworks>,
        ),
        pool: PgPool,
        handoff: mpsc::Sender<Incoming>,
        metrics: PollMetrics,
    ) -> anyhow::Result<Self> {
        let client = ShellyClient::new(settings, networks)?;
        Ok(Self {
            anonymous: client.without_password(),
            client,
            interval: Duration::from_secs(settings.interval_s.max(1)),
            failures_before_offline: settings.failures_before_offline.max(1),
            pool,
            handoff,
            metrics,
        })
    }

    /// A poller of `host` (`address[:port]`), found as `origin`.
    pub fn poller(&self, host: &str, origin: Origin) -> ShellyPoller {
        let client = if origin.trusted() {
            &self.client
        } else {
            &self.anonymous
        };
        ShellyPoller {
            context: self.clone(),
            host: client.host(host),
            origin,
        }
    }
}

/// One host's poller.
#[derive(Clone)]
pub struct ShellyPoller {
    context: ShellyContext,
    host: ShellyHost,
    origin: Origin,
}

/// The longest a host that is offline waits between polls.
const LONGEST_OFFLINE_WAIT: Duration = Duration::from_secs(300);

impl ShellyPoller {
    pub fn host(&self) -> &str {
        self.host.name()
    }

    async fn get(&self, path: &str) -> Result<Value, ShellyError> {
        self.host.get(path).await
    }

    /// Gen2 first; a host without `/rpc` (404) is a Gen1 device.
    pub async fn identify(&self) -> Result<Identity, ShellyError> {
        let malformed = |message: String| ShellyError::Malformed {
            host: self.host().to_owned(),
            message,
        };
        match self.get("/rpc/Shelly.GetDeviceInfo").await {
            Ok(info) => gen2_identity(&info).map_err(malformed),
            // Gen1 (basic auth goes only to the operator's shelly.gen1_hosts: a host saying it
            // is a Gen1 proves nothing).
            Err(ShellyError::Status { status: 404, .. }) => {
                gen1_identity(&self.get("/shelly").await?).map_err(malformed)
            }
            Err(e) => Err(e),
        }
    }

    /// Registers the device, or adds what the poller knows to a registered one's metadata (an
    /// operator's own keys stay).
    async fn register(&self, identity: &Identity) {
        let address = crate::clients::host_part(self.host());
        let metadata = json!({
            "mac": identity.mac, "ip": address, "http": self.host(), "model": identity.model,
            "generation": identity.generation, "firmware": identity.firmware, "polled": true,
        });
        let new = NewDevice {
            device_id: identity.device_id.to_string(),
            device_name: identity
                .model
                .as_deref()
                .map_or_else(|| "Shelly".to_owned(), |m| format!("Shelly {m}")),
            device_type: Some("shelly".into()),
            location: None,
            status: None,
            metadata: Some(metadata.clone()),
        };
        let pool = &self.context.pool;
        match registry::devices::register(pool, &identity.device_id, new).await {
            Ok(_) => {
                tracing::info!(device_id = %identity.device_id, host = self.host(), "Shelly registered")
            }
            Err(registry::RegistryError::Conflict(_)) => {
                // The address it is reached at is devicehub's own knowledge (the lease, the
                // configuration); its identity, checked against the record already, is pinned
                // where the record has none yet and never replaced.
                let reached = json!({"http": self.host(), "ip": address, "polled": true});
                let pinned = json!({"mac": identity.mac, "generation": identity.generation, "model": identity.model});
                let id = &identity.device_id;
                let noted = match registry::devices::merge_metadata(pool, id, &reached).await {
                    Ok(()) => registry::devices::pin_metadata(pool, id, &pinned).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = noted {
                    tracing::warn!(error = %e, host = self.host(), "cannot note the Shelly as polled");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, host = self.host(), "cannot register the Shelly; its readings register it bare")
            }
        }
    }

    /// One poll: the status as messages for ingest.
    pub async fn poll(&self, identity: &Identity) -> Result<Vec<(String, Vec<u8>)>, ShellyError> {
        Ok(if identity.generation >= 2 {
            gen2_messages(
                &identity.device_id,
                &self.get("/rpc/Shelly.GetStatus").await?,
            )
        } else {
            gen1_messages(&identity.device_id, &self.get("/status").await?)
        })
    }

    /// Counts a poll's outcome; logs a host when it starts failing and when it answers again.
    fn count<T>(&self, result: &Result<T, ShellyError>, failures: &mut u32) {
        match result {
            Ok(_) => {
                self.context.metrics.polled("shelly", "ok");
                if *failures > 0 {
                    tracing::info!(host = self.host(), "the Shelly answers again");
                }
                *failures = 0;
            }
            Err(e) => {
                self.context.metrics.polled("shelly", e.outcome());
                if *failures == 0 {
                    tracing::warn!(error = %e, "cannot poll a Shelly; retrying");
                }
                *failures = failures.saturating_add(1);
            }
        }
    }

    /// How long to wait after `failures` failed polls in a row: the interval, and once the host
    /// counts as offline twice as long each time, up to five minutes.
    fn wait(&self, failures: u32) -> Duration {
        let limit = self.context.failures_before_offline;
        if failures < limit {
            return self.context.interval;
        }
        let doublings = (failures - limit).min(16);
        (self.context.interval * 2u32.pow(doublings))
            .min(LONGEST_OFFLINE_WAIT.max(self.context.interval))
    }

    /// Identifies the host, then polls every interval until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut failures = 0u32;
        let mut alerted = None;
        let identity = loop {
            let result = self.identify().await;
            self.count(&result, &mut failures);
            let mut wait = self.wait(failures);
            if let Ok(identity) = result {
                match self.conflict(&identity).await {
                    Ok(None) => break identity,
                    Ok(Some(why)) => {
                        // Once per claim; asked again now and then, in case the record changes.
                        if alerted.as_ref() != Some(&why) {
                            self.alert_conflict(&identity, &why).await;
                            alerted = Some(why);
                        }
                        wait = LONGEST_OFFLINE_WAIT.max(self.context.interval);
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot check a Shelly's identity"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
        };
        if !self.wait_while_pushing(&identity, &shutdown).await {
            return Ok(());
        }
        self.register(&identity).await;
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            let result = self.poll(&identity).await;
            self.count(&result, &mut failures);
            // The next poll on the interval's cadence, however long this one took.
            next += self.wait(failures);
            next = next.max(tokio::time::Instant::now());
            match result {
                Ok(messages) => {
                    for (topic, payload) in messages {
                        let incoming = Incoming {
                            topic,
                            payload: payload.into(),
                            redelivered: false,
                            retained: false,
                            ack: None,
                        };
                        tokio::select! {
                            sent = self.context.handoff.send(incoming) => {
                                if sent.is_err() {
                                    return Ok(()); // ingest has stopped: shutting down
                                }
                            }
                            () = shutdown.cancelled() => return Ok(()),
                        }
                    }
                }
                Err(e) if failures == self.context.failures_before_offline => {
                    let why =
                        format!("the poller cannot reach it ({failures} polls in a row): {e}");
                    match registry::devices::mark_unreachable(
                        &self.context.pool,
                        &identity.device_id,
                        &why,
                    )
                    .await
                    {
                        Ok(true) => {
                            tracing::warn!(device_id = %identity.device_id, host = self.host(), "Shelly marked offline")
                        }
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot mark the Shelly offline")
                        }
                    }
                }
                Err(_) => {}
            }
        }
    }
}

/// Every Shelly host to poll: the configured ones and those the inventory finds, looked up
/// again every interval; a poller starts for each new host and stops for each gone one.
#[derive(Clone)]
pub struct ShellyFleet {
    context: ShellyContext,
    /// `shelly.hosts` and `shelly.gen1_hosts`.
    configured: Vec<String>,
    port: u16,
    inventory: Option<Inventory>,
}

impl ShellyFleet {
    pub fn new(
        settings: &ShellySettings,
        context: ShellyContext,
        inventory: Option<Inventory>,
    ) -> Self {
        let configured = settings
            .hosts
            .iter()
            .chain(&settings.gen1_hosts)
            .map(|h| normal_host(h))
            .collect();
        Self {
            context,
            configured,
            port: settings.port,
            inventory,
        }
    }

    /// The hosts to poll now, with where they come from (a configured host wins).
    async fn targets(&self) -> BTreeMap<String, Origin> {
        let mut targets = BTreeMap::new();
        if let Some(inventory) = &self.inventory {
            if let Err(e) = inventory.sync_if_stale().await {
                tracing::debug!(error = %e, "the inventory is not up to date");
            }
            match inventory.shelly_hosts().await {
                Ok(hosts) => targets.extend(hosts.into_iter().map(|h| {
                    let host = normal_host(&format!("{}:{}", h.ip, self.port));
                    let origin = Origin::Leased {
                        mac: h.mac,
                        adopted: h.adopted,
                    };
                    (host, origin)
                })),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the Shelly hosts of the inventory")
                }
            }
        }
        targets.extend(
            self.configured
                .iter()
                .map(|h| (h.clone(), Origin::Configured)),
        );
        targets
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut running: HashMap<String, (Origin, CancellationToken)> = HashMap::new();
        let mut hosts_of: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut tasks = tokio::task::JoinSet::new();
        let mut ticks = tokio::time::interval(self.context.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                Some(done) = tasks.join_next_with_id() => {
                    let id = match &done { Ok((id, _)) => *id, Err(e) => e.id() };
                    if let Some(host) = hosts_of.remove(&id) {
                        running.remove(&host);
                        match done {
                            Err(e) if e.is_panic() => tracing::error!(host, "a Shelly poller panicked; restarting it at the next interval"),
                            Ok((_, Err(e))) => tracing::error!(host, error = %e, "a Shelly poller stopped; restarting it at the next interval"),
                            _ => {}
                        }
                    }
                    continue;
                }
                () = shutdown.cancelled() => break,
            }
            let targets = self.targets().await;
            // A host gone, or now of another origin (leased to another MAC, adopted), starts over.
            running.retain(|host, (origin, token)| {
                let keep = targets.get(host) == Some(origin);
                if !keep {
                    tracing::info!(host, "no longer this Shelly host; its poller stops");
                    token.cancel();
                }
                keep
            });
            for (host, origin) in targets {
                if running.contains_key(&host) {
                    continue;
                }
                let token = shutdown.child_token();
                let poller = self.context.poller(&host, origin.clone());
                let task = tasks.spawn(poller.run(token.clone()));
                hosts_of.insert(task.id(), host.clone());
                tracing::info!(host, trusted = origin.trusted(), "polling a Shelly");
                running.insert(host, (origin, token));
            }
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

use crate::clients::shelly::normal_host;
