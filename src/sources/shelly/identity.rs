//! A polled Shelly's identity is pinned, not claimed: where a host comes from decides what it
//! is trusted with ([`Origin`]), and its answer must agree with the MAC the router leased its
//! address to and with the registry's record of the device it names.

use super::{Identity, ShellyPoller};
use crate::domain::Mac;
use crate::registry;

/// Where a host to poll comes from, which decides what it is trusted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `shelly.hosts` or `shelly.gen1_hosts`: the operator named it.
    Configured,
    /// The inventory: the router leased the address to `mac`; `adopted` when the operator's
    /// metadata file names that MAC a Shelly (else its DHCP host name alone does).
    Leased { mac: String, adopted: bool },
}

impl Origin {
    /// Whether the host gets the shared password.
    pub(super) fn trusted(&self) -> bool {
        match self {
            Origin::Configured => true,
            Origin::Leased { adopted, .. } => *adopted,
        }
    }
}

impl ShellyPoller {
    /// Why the host's answer cannot be the device it names, if it cannot: checked against the
    /// MAC the router leased its address to, and the registry's record of that device id.
    pub(super) async fn conflict(
        &self,
        identity: &Identity,
    ) -> Result<Option<String>, sqlx::Error> {
        let claimed = identity.mac.as_deref().and_then(Mac::parse);
        if let Origin::Leased { mac, .. } = &self.origin {
            if claimed.is_none() || claimed != Mac::parse(mac) {
                return Ok(Some(format!(
                    "{} answers as {} (MAC {}), but the router leased its address to MAC {mac}",
                    self.host(),
                    identity.device_id,
                    identity.mac.as_deref().unwrap_or("none")
                )));
            }
        }
        let Some((device_type, mac, generation)) =
            registry::devices::pinned_identity(&self.context.pool, &identity.device_id).await?
        else {
            return Ok(None);
        };
        let id = &identity.device_id;
        Ok(match (device_type.as_deref(), mac, generation) {
            (Some(t), _, _) if t != "shelly" => Some(format!(
                "{} answers as {id}, which is a registered device of type {t}",
                self.host()
            )),
            // Registered bare from its MQTT traffic: a Shelly's status names it `shelly...`.
            (None, _, _) if !id.as_str().starts_with("shelly") => Some(format!(
                "{} answers as {id}, a registered device that is no Shelly",
                self.host()
            )),
            (_, Some(mac), _) if claimed.is_none() || claimed != Mac::parse(&mac) => Some(format!(
                "{} answers as {id} with MAC {}, but {id} is MAC {mac}",
                self.host(),
                identity.mac.as_deref().unwrap_or("none")
            )),
            (_, _, Some(g)) if g != i64::from(identity.generation) => Some(format!(
                "{} answers as {id} of generation {}, but {id} is generation {g}",
                self.host(),
                identity.generation
            )),
            _ => None,
        })
    }

    /// Raises `identity_conflict` (on the device claimed when it exists, else for the service).
    pub(super) async fn alert_conflict(&self, identity: &Identity, why: &str) {
        tracing::warn!(host = self.host(), device_id = %identity.device_id, why, "a host's identity conflicts; not polling it");
        let message =
            format!("{why}; devicehub does not poll it, nor send it credentials or commands");
        let pool = &self.context.pool;
        let raised = match registry::alerts::raise_on_device_if_exists(
            pool,
            &identity.device_id,
            ("identity_conflict", crate::domain::Severity::Critical),
            &message,
        )
        .await
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                registry::alerts::raise_service(
                    pool,
                    "identity_conflict",
                    crate::domain::Severity::Critical,
                    &message,
                )
                .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = raised {
            tracing::error!(error = %e, %message, "cannot raise an alert");
        }
    }
}
