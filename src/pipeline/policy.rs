//! Acceptance policy: whether a message from a device the registry does not know is taken (the
//! registry sink then registers it as `unregistered`) or dead-lettered
//! (`mqtt.unknown_devices = "reject"`).

use std::collections::HashSet;

use sqlx::PgPool;

use crate::configuration::{MqttSettings, UnknownDevicePolicy};
use crate::domain::{DeviceId, RejectKind, Rejection};
use crate::registry;

pub struct Acceptance {
    pool: PgPool,
    /// `None` when every device is accepted; else the devices known to be registered.
    known: Option<HashSet<String>>,
}

impl Acceptance {
    pub async fn load(mqtt: &MqttSettings, pool: PgPool) -> Result<Self, sqlx::Error> {
        let known = match mqtt.unknown_devices {
            UnknownDevicePolicy::Register => None,
            UnknownDevicePolicy::Reject => {
                Some(registry::devices::ids(&pool).await?.into_iter().collect())
            }
        };
        Ok(Self { pool, known })
    }

    /// Whether messages of `device` are taken. A device registered since the last look is
    /// found in the registry (and remembered).
    pub async fn admits(&mut self, device: &DeviceId) -> Result<(), Rejection> {
        let Some(known) = &mut self.known else {
            return Ok(());
        };
        if known.contains(device.as_str())
            || registry::devices::exists(&self.pool, device)
                .await
                .unwrap_or(false)
        {
            known.insert(device.as_str().to_owned());
            return Ok(());
        }
        Err(Rejection::new(
            RejectKind::InvalidDeviceId,
            format!("device {device} is not registered"),
        ))
    }
}
