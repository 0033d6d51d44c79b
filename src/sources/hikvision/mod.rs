//! HikVision cameras over ISAPI (digest auth): a source beside MQTT and the Shelly poller.
//!
//! Each configured camera (`hikvision.hosts`) is identified by `GET /ISAPI/System/deviceInfo`
//! and registered as a device of type `camera` (model, serial, firmware, MAC in its metadata).
//! Then its alert stream, `GET /ISAPI/Event/notification/alertStream`, is held open: a
//! `multipart/mixed` body of `EventNotificationAlert` XML parts.
//!
//! - Detections (`VMD` motion, `linedetection`, `fielddetection` intrusion) while active become
//!   events — handed to ingest as `qs/v1` events of the camera, so they are journaled, stored in
//!   PostgreSQL's events table and archived like every other event, deduplicated by an event id
//!   made of the camera's own fields — and raise a `motion` (or `line_crossing`, `intrusion`)
//!   alert, one per channel while the detection stays active: a new alert only after the camera
//!   said `inactive` or `hikvision.alert_hold_s` passed without an active part.
//! - Every part, the `videoloss`/`inactive` heartbeat included, keeps the camera online
//!   (a registry heartbeat at most every 10 s).
//! - `hikvision.silence_s` (30 s) without a byte closes the stream and opens it again; a
//!   camera that fails `hikvision.failures_before_offline` times in a row (no answer, an error
//!   status, XML that does not parse, a closed connection) is marked offline with an alert and
//!   retried less often.
//!
//! Every attempt and part is counted: `devicehub_polls_total{source="hikvision",outcome=...}`.
//! Snapshots (`GET /api/devices/{id}/snapshot`) come from [`crate::clients::hikvision::CameraClient::snapshot`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clients::hikvision::{isapi, multipart, CameraClient, CameraError};
use crate::clients::http_auth::{AuthedHost, HttpFailure};
use crate::configuration::HikvisionSettings;
use crate::domain::{DeviceId, NewAlert, NewDevice, Severity};
use crate::metrics::PollMetrics;
use crate::pipeline::Incoming;
use crate::registry;

/// How often a talking camera's `last_seen` is written.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
const LONGEST_OFFLINE_WAIT: Duration = Duration::from_secs(300);

/// The device id of a camera: `hikvision-` and its serial number, lower case.
pub fn camera_id(serial: &str) -> Result<DeviceId, String> {
    let serial: String = serial
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .map(|c| c.to_ascii_lowercase())
        .take(DeviceId::MAX_LEN - "hikvision-".len())
        .collect();
    DeviceId::parse(&format!("hikvision-{serial}")).map_err(|e| e.message)
}

/// One camera's task.
#[derive(Clone)]
pub struct Camera {
    client: CameraClient,
    host: AuthedHost,
    silence: Duration,
    hold: Duration,
    failures_before_offline: u32,
    qs_prefix: String,
    pool: PgPool,
    handoff: mpsc::Sender<Incoming>,
    metrics: PollMetrics,
}

/// How one stream ended.
enum Ended {
    Shutdown,
    /// The camera closed it, or said nothing for `silence`: open it again.
    Closed(CameraError),
}

impl Camera {
    pub fn new(
        (settings, networks): (&HikvisionSettings, Arc<crate::clients::DeviceNetworks>),
        host: &str,
        qs_prefix: &str,
        (pool, handoff, metrics): (PgPool, mpsc::Sender<Incoming>, PollMetrics),
    ) -> anyhow::Result<Self> {
        let client = CameraClient::new(settings, networks)?;
        Ok(Self {
            host: client.host(host),
            client,
            silence: Duration::from_secs(settings.silence_s.max(1)),
            hold: Duration::from_secs(settings.alert_hold_s),
            failures_before_offline: settings.failures_before_offline.max(1),
            qs_prefix: qs_prefix.to_owned(),
            pool,
            handoff,
            metrics,
        })
    }

    pub fn host(&self) -> &str {
        self.host.name()
    }

    async fn register(&self, id: &DeviceId, info: &isapi::DeviceInfo) {
        let address = crate::clients::host_part(self.host());
        let new = NewDevice {
            device_id: id.to_string(),
            device_name: info
                .name
                .as_deref()
                .or(info.model.as_deref())
                .map(|n| n.chars().take(200).collect())
                .unwrap_or_else(|| "HikVision camera".into()),
            device_type: Some("camera".into()),
            location: None,
            status: None,
            metadata: Some(json!({
                "vendor": "hikvision", "mac": info.mac, "ip": address, "http": self.host(),
                "model": info.model, "serial": info.serial, "firmware": info.firmware,
                "polled": true,
            })),
        };
        match registry::devices::register(&self.pool, id, new).await {
            Ok(_) => tracing::info!(device_id = %id, host = self.host(), "camera registered"),
            Err(registry::RegistryError::Conflict(_)) => {}
            Err(e) => tracing::warn!(error = %e, host = self.host(), "cannot register the camera"),
        }
    }

    fn count(&self, result: Result<(), &CameraError>, failures: &mut u32) {
        match result {
            Ok(()) => {
                self.metrics.polled("hikvision", "ok");
                if *failures > 0 {
                    tracing::info!(host = self.host(), "the camera answers again");
                }
                *failures = 0;
            }
            Err(e) => {
                self.metrics.polled("hikvision", e.outcome());
                if *failures == 0 {
                    tracing::warn!(error = %e, "a camera fails; retrying");
                }
                *failures = failures.saturating_add(1);
            }
        }
    }

    /// How long to wait before connecting again after `attempts` connections in a row that
    /// brought nothing good: a second, and once the camera counts as offline twice as long each
    /// time, up to five minutes.
    fn wait(&self, attempts: u32) -> Duration {
        let base = Duration::from_secs(1).max(self.silence / 10);
        if attempts < self.failures_before_offline {
            return base;
        }
        (base * 2u32.pow((attempts - self.failures_before_offline).min(16)))
            .min(LONGEST_OFFLINE_WAIT)
    }

    async fn offline_after(&self, id: Option<&DeviceId>, failures: u32, error: &CameraError) {
        let Some(id) = id.filter(|_| failures == self.failures_before_offline) else {
            return;
        };
        let why = format!("the camera fails ({failures} times in a row): {error}");
        match registry::devices::mark_unreachable(&self.pool, id, &why).await {
            Ok(true) => {
                tracing::warn!(device_id = %id, host = self.host(), "camera marked offline")
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot mark the camera offline"),
        }
    }

    /// Identifies the camera, then holds its alert stream open until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // Failures in a row (attempts and malformed parts): the offline rule.
        let mut failures = 0u32;
        // Connections in a row that brought nothing good: the reconnect delay.
        let mut attempts = 0u32;
        let mut id: Option<DeviceId> = None;
        loop {
            let mut heard = false;
            let attempt: Result<(), CameraError> = match &id {
                None => match self.client.device_info(&self.host).await {
                    Ok(info) => match camera_id(&info.serial) {
                        Ok(new) => {
                            self.register(&new, &info).await;
                            id = Some(new);
                            self.count(Ok(()), &mut failures);
                            continue;
                        }
                        Err(e) => Err(CameraError::malformed(self.host(), e)),
                    },
                    Err(e) => Err(e),
                },
                Some(id) => match self
                    .stream(id, (&mut failures, &mut heard), &shutdown)
                    .await
                {
                    Ok(Ended::Shutdown) => return Ok(()),
                    Ok(Ended::Closed(e)) | Err(e) => Err(e),
                },
            };
            if let Err(e) = attempt {
                self.count(Err(&e), &mut failures);
                self.offline_after(id.as_ref(), failures, &e).await;
            }
            attempts = if heard { 0 } else { attempts.saturating_add(1) };
            tokio::select! {
                () = tokio::time::sleep(self.wait(attempts)) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// One alert stream, until it ends.
    async fn stream(
        &self,
        id: &DeviceId,
        (failures, good): (&mut u32, &mut bool),
        shutdown: &CancellationToken,
    ) -> Result<Ended, CameraError> {
        let mut response = tokio::select! {
            r = self.client.alert_stream(&self.host) => r?,
            () = shutdown.cancelled() => return Ok(Ended::Shutdown),
        };
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let boundary = multipart::boundary(&content_type).ok_or_else(|| {
            CameraError::malformed(
                self.host(),
                format!("the alert stream is {content_type:?}, not multipart"),
            )
        })?;
        let mut parts = multipart::Multipart::new(&boundary);
        let mut heard = Instant::now() - HEARTBEAT_EVERY;
        let mut active: HashMap<(&'static str, u32), Instant> = HashMap::new();
        tracing::debug!(host = self.host(), "alert stream open");
        loop {
            let chunk = tokio::select! {
                c = tokio::time::timeout(self.silence, response.chunk()) => c,
                () = shutdown.cancelled() => return Ok(Ended::Shutdown),
            };
            let chunk = match self.chunk_or_end(chunk) {
                Ok(chunk) => chunk,
                Err(ended) => return Ok(ended),
            };
            parts.push(&chunk);
            self.read_parts(id, &mut parts, (failures, good), (&mut heard, &mut active))
                .await?;
            if parts.is_finished() {
                return Ok(Ended::Closed(CameraError::Connection {
                    host: self.host().to_owned(),
                    error: "the alert stream ended".into(),
                }));
            }
        }
    }

    /// The next piece of the stream, or how the stream ended (silence, closed, an error).
    fn chunk_or_end(
        &self,
        chunk: Result<reqwest::Result<Option<bytes::Bytes>>, tokio::time::error::Elapsed>,
    ) -> Result<bytes::Bytes, Ended> {
        match chunk {
            Err(_) => Err(Ended::Closed(CameraError::Timeout {
                host: self.host().to_owned(),
            })),
            Ok(Ok(None)) => Err(Ended::Closed(CameraError::Connection {
                host: self.host().to_owned(),
                error: "the camera closed the alert stream".into(),
            })),
            Ok(Err(e)) => Err(Ended::Closed(CameraError::of(
                self.host(),
                HttpFailure::of(&e),
            ))),
            Ok(Ok(Some(chunk))) => Ok(chunk),
        }
    }

    /// Reads every whole part received so far: alerts keep the camera online (a heartbeat at
    /// most every [`HEARTBEAT_EVERY`]) and detections become events and alerts.
    async fn read_parts(
        &self,
        id: &DeviceId,
        parts: &mut multipart::Multipart,
        (failures, good): (&mut u32, &mut bool),
        (heard, active): (&mut Instant, &mut HashMap<(&'static str, u32), Instant>),
    ) -> Result<(), CameraError> {
        loop {
            let part = match parts.next_part() {
                Ok(Some(part)) => part,
                Ok(None) => break,
                Err(e) => {
                    let e = CameraError::malformed(self.host(), e);
                    self.count(Err(&e), failures);
                    self.offline_after(Some(id), *failures, &e).await;
                    break;
                }
            };
            if !part
                .content_type
                .as_deref()
                .is_none_or(|t| t.to_ascii_lowercase().contains("xml"))
            {
                continue; // a picture some firmwares attach
            }
            let alert = match isapi::alert(&part.body) {
                Ok(alert) => alert,
                Err(e) => {
                    let e = CameraError::malformed(self.host(), e);
                    self.count(Err(&e), failures);
                    self.offline_after(Some(id), *failures, &e).await;
                    continue;
                }
            };
            self.count(Ok(()), failures);
            *good = true;
            if heard.elapsed() >= HEARTBEAT_EVERY {
                *heard = Instant::now();
                if let Err(e) = registry::devices::heartbeat(&self.pool, id).await {
                    tracing::warn!(error = %e, device_id = %id, "cannot record the camera's heartbeat");
                }
            }
            if let Some(kind) = alert.detection() {
                self.detection(id, kind, &alert, active).await?;
            }
        }
        Ok(())
    }

    /// An active detection: an event for ingest, and an alert unless one is open for it.
    async fn detection(
        &self,
        id: &DeviceId,
        kind: &'static str,
        alert: &isapi::Alert,
        active: &mut HashMap<(&'static str, u32), Instant>,
    ) -> Result<(), CameraError> {
        let key = (kind, alert.channel);
        if !alert.active {
            active.remove(&key);
            return Ok(());
        }
        let event_id = format!(
            "{}-{}-{}-{}",
            alert.event_type,
            alert.channel,
            alert
                .date_time
                .clone()
                .unwrap_or_else(|| Utc::now().to_rfc3339()),
            alert.post_count
        );
        let mut event = json!({
            "schema": 1, "event_id": event_id, "device_id": id.as_str(), "event_type": kind,
            "value": alert.event_type,
            "meta": {"channel": alert.channel, "camera_event": alert.event_type,
                     "description": alert.description, "active_post_count": alert.post_count},
        });
        if let Some(at) = alert
            .date_time
            .as_deref()
            .filter(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok())
        {
            event["ts_device"] = json!(at);
        }
        let incoming = Incoming {
            topic: format!("{}/{id}/events", self.qs_prefix),
            payload: event.to_string().into_bytes().into(),
            redelivered: false,
            retained: false,
            ack: None,
        };
        if self.handoff.send(incoming).await.is_err() {
            return Ok(()); // ingest has stopped: shutting down
        }
        let now = Instant::now();
        let open = active
            .get(&key)
            .is_some_and(|last| now.duration_since(*last) < self.hold);
        active.insert(key, now);
        if open {
            return Ok(());
        }
        let raised = registry::alerts::raise(
            &self.pool,
            id,
            NewAlert {
                alert_type: kind.to_owned(),
                severity: Severity::Warning,
                message: format!(
                    "{} on channel {} ({}{})",
                    kind.replace('_', " "),
                    alert.channel,
                    alert.event_type,
                    alert
                        .description
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ),
            },
        )
        .await;
        if let Err(e) = raised {
            tracing::warn!(error = %e, device_id = %id, "cannot raise the camera's alert");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cameras_id_is_its_serial() {
        assert_eq!(
            camera_id("DS-2CD2143G2-I20230101AAWRJ12345678")
                .unwrap()
                .as_str(),
            "hikvision-ds-2cd2143g2-i20230101aawrj12345678"
        );
        assert_eq!(camera_id("a b/c").unwrap().as_str(), "hikvision-abc");
    }
}
