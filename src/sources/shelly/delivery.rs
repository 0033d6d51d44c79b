//! Push or poll, per device: what a Shelly says of its MQTT notifications (`Mqtt.GetConfig`),
//! and the poller's wait while the device pushes (see the module above).

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{Identity, ShellyPoller};
use crate::registry;

/// A Shelly that says it pushes is looked at again after this many intervals: polled if its
/// status has not arrived over MQTT meanwhile.
const PUSH_WATCH_INTERVALS: u32 = 6;

/// What a Shelly says of its MQTT status notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// It publishes its status over MQTT.
    Pushes,
    /// It does not (or cannot in a way devicehub reads: Gen1).
    Polled,
    /// It would not say.
    Unknown,
}

/// A Gen2+ `Mqtt.GetConfig` answer: pushes when MQTT is on with status or RPC notifications.
pub fn delivery_of(config: &Value) -> Delivery {
    let on = |key: &str| config.get(key).and_then(Value::as_bool).unwrap_or(false);
    match on("enable") && (on("status_ntf") || on("rpc_ntf")) {
        true => Delivery::Pushes,
        false => Delivery::Polled,
    }
}

impl ShellyPoller {
    /// Whether the device pushes its status over MQTT, by its own word.
    async fn delivery(&self, identity: &Identity) -> Delivery {
        if identity.generation < 2 {
            return Delivery::Polled;
        }
        match self.get("/rpc/Mqtt.GetConfig").await {
            Ok(config) => delivery_of(&config),
            Err(e) => {
                tracing::debug!(error = %e, host = self.host(), "the Shelly does not say whether it pushes");
                Delivery::Unknown
            }
        }
    }

    /// Waits while the device pushes its status over MQTT (the push alternative): polling it
    /// too would double its readings. `false` on shutdown.
    pub(super) async fn wait_while_pushing(
        &self,
        identity: &Identity,
        shutdown: &CancellationToken,
    ) -> bool {
        let pool = &self.context.pool;
        if registry::devices::is_polled(pool, &identity.device_id)
            .await
            .unwrap_or(false)
        {
            return true;
        }
        // Polled or not, the registry learns its address and, if it has none, its MAC (the
        // inventory joins by MAC); the identity was checked against the record before.
        let address = crate::clients::host_part(self.host());
        let noted = match registry::devices::merge_metadata(
            pool,
            &identity.device_id,
            &json!({"ip": address}),
        )
        .await
        {
            Ok(()) => {
                let mac = json!({"mac": identity.mac});
                registry::devices::pin_metadata(pool, &identity.device_id, &mac).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = noted {
            tracing::debug!(error = %e, "cannot note the Shelly's address");
        }
        let watch = match self.delivery(identity).await {
            Delivery::Polled => return true,
            Delivery::Unknown => self.context.interval,
            Delivery::Pushes => self.context.interval * PUSH_WATCH_INTERVALS,
        };
        let mut said = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep(watch) => {}
                () = shutdown.cancelled() => return false,
            }
            match registry::devices::pushes_over_mqtt(pool, &identity.device_id, watch).await {
                Ok(true) => {
                    if !said {
                        tracing::info!(device_id = %identity.device_id, host = self.host(),
                            "the Shelly pushes over MQTT; not polling it while it does");
                        said = true;
                    }
                }
                Ok(false) => return true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot tell whether the Shelly pushes; polling it");
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mqtt_config_shelly_documents_says_push_or_poll() {
        // Mqtt.GetConfig as Shelly's Gen2 API documents it, MQTT off (the factory setting).
        let off = serde_json::json!({"enable": false, "server": null, "client_id": "shellypro4pm-f008d1d8b8b8",
            "user": null, "ssl_ca": null, "topic_prefix": "shellypro4pm-f008d1d8b8b8", "rpc_ntf": true,
            "status_ntf": false, "use_client_cert": false, "enable_rpc": true, "enable_control": true});
        assert_eq!(delivery_of(&off), Delivery::Polled);
        let mut on = off.clone();
        on["enable"] = true.into();
        on["server"] = "broker.lan:1883".into();
        assert_eq!(
            delivery_of(&on),
            Delivery::Pushes,
            "NotifyStatus over rpc_ntf is a push"
        );
        on["rpc_ntf"] = false.into();
        assert_eq!(delivery_of(&on), Delivery::Polled);
        on["status_ntf"] = true.into();
        assert_eq!(delivery_of(&on), Delivery::Pushes);
        assert_eq!(
            delivery_of(&serde_json::json!({"switch:0": {}})),
            Delivery::Polled
        );
    }
}
