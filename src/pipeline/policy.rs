//! Acceptance policy for devices the registry does not know: their messages are taken (the
//! registry sink then registers them as `unregistered`) at most `mqtt.registrations_per_minute`
//! new devices a minute, or dead-lettered (`mqtt.unknown_devices = "reject"`, per protocol with
//! `mqtt.unknown_devices_by_protocol`). Known devices are never limited.
//!
//! Ingest looks a batch's unknown devices up in the registry in one query ([`Acceptance::look_up`])
//! and then decides each message without waiting ([`Acceptance::admits`]).

use std::collections::HashSet;
use std::num::NonZeroU32;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sqlx::PgPool;

use crate::configuration::{MqttSettings, UnknownDevicePolicy, PROTOCOLS};
use crate::domain::{DeviceId, RejectKind, Rejection};
use crate::registry;

pub struct Acceptance {
    pool: PgPool,
    /// The policy for each of [`PROTOCOLS`], in that order.
    policies: [UnknownDevicePolicy; 3],
    /// Devices registered, or admitted for registration. Grows by at most the registration rate.
    known: HashSet<String, foldhash::fast::RandomState>,
    registrations: DefaultDirectRateLimiter,
}

impl Acceptance {
    pub async fn load(mqtt: &MqttSettings, pool: PgPool) -> Result<Self, sqlx::Error> {
        let policies = PROTOCOLS.map(|p| {
            mqtt.unknown_devices_by_protocol
                .get(p)
                .copied()
                .unwrap_or(mqtt.unknown_devices)
        });
        let known = registry::devices::ids(&pool).await?.into_iter().collect();
        let rate = NonZeroU32::new(mqtt.registrations_per_minute).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            pool,
            policies,
            known,
            registrations: RateLimiter::direct(Quota::per_minute(rate)),
        })
    }

    /// Learns which of `devices` the registry holds that this process has not seen (registered
    /// through the API, or by another collector), in one query.
    pub async fn look_up<'a>(&mut self, devices: impl Iterator<Item = &'a DeviceId>) {
        let mut unseen: Vec<&str> = devices
            .map(DeviceId::as_str)
            .filter(|d| !self.known.contains(*d))
            .collect();
        if unseen.is_empty() {
            return;
        }
        unseen.sort_unstable();
        unseen.dedup();
        match registry::devices::existing(&self.pool, &unseen).await {
            Ok(found) => self.known.extend(found),
            Err(e) => {
                tracing::warn!(error = %e, "cannot look devices up; treating them as new");
            }
        }
    }

    /// Whether a message of `device`, on a topic of `protocol` ([`PROTOCOLS`]), is taken.
    pub fn admits(&mut self, device: &DeviceId, protocol: &str) -> Result<(), Rejection> {
        if self.known.contains(device.as_str()) {
            return Ok(());
        }
        let policy = PROTOCOLS
            .iter()
            .position(|p| *p == protocol)
            .map_or(UnknownDevicePolicy::Register, |i| self.policies[i]);
        if policy == UnknownDevicePolicy::Reject {
            return Err(Rejection::new(
                RejectKind::InvalidDeviceId,
                format!("device {device} is not registered"),
            ));
        }
        if self.registrations.check().is_err() {
            return Err(Rejection::new(
                RejectKind::RegistrationLimited,
                format!("device {device} is new, and new devices are over mqtt.registrations_per_minute"),
            ));
        }
        self.known.insert(device.as_str().to_owned());
        Ok(())
    }
}
