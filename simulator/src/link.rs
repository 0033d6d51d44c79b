//! A simulated device's MQTT connections: one per broker, each with the device's last will,
//! an optional message published on every (re)connect (the retained `online` status), the
//! device's subscriptions, and one stream of what arrives on any of them.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, Packet, Publish, QoS};
use tokio::sync::mpsc;

use crate::load::mqtt_options;

/// When set, every simulated device logs in to the broker as itself: user name its device id,
/// this password (a broker with devicehub's shipped ACL lets a device publish only under its own
/// id). `scripts/run.sh` sets it and adds the scenario's devices to its broker's password file.
pub const DEVICE_PASSWORD_ENV: &str = "DEVICEHUB_SIM_DEVICE_PASSWORD";

pub struct Link {
    clients: Vec<AsyncClient>,
    pub incoming: mpsc::UnboundedReceiver<Publish>,
}

pub struct LinkOptions {
    pub client_id: String,
    /// The device's id: its broker user name when [`DEVICE_PASSWORD_ENV`] is set.
    pub device_id: String,
    pub will: Option<LastWill>,
    /// Published (QoS 1, retained) after every connect.
    pub on_connect: Option<(String, Vec<u8>)>,
    pub subscriptions: Vec<String>,
}

impl Link {
    pub async fn connect(brokers: &[String], options: LinkOptions) -> anyhow::Result<Self> {
        let (tx, incoming) = mpsc::unbounded_channel();
        let mut clients = Vec::new();
        for (i, broker) in brokers.iter().enumerate() {
            let id = if brokers.len() == 1 {
                options.client_id.clone()
            } else {
                format!("{}-b{i}", options.client_id)
            };
            let mut mqtt = mqtt_options(broker, id)?;
            mqtt.set_inflight(100);
            if let Ok(password) = std::env::var(DEVICE_PASSWORD_ENV) {
                mqtt.set_credentials(options.device_id.clone(), password);
            }
            if let Some(will) = &options.will {
                mqtt.set_last_will(will.clone());
            }
            let (client, mut eventloop) = AsyncClient::new(mqtt, 1000);
            let subscriptions = options.subscriptions.clone();
            let on_connect = options.on_connect.clone();
            let tx = tx.clone();
            let c = client.clone();
            tokio::spawn(async move {
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            for topic in &subscriptions {
                                let _ = c.subscribe(topic, QoS::AtLeastOnce).await;
                            }
                            if let Some((topic, payload)) = &on_connect {
                                let _ = c
                                    .publish(topic, QoS::AtLeastOnce, true, payload.clone())
                                    .await;
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            if tx.send(p).is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(rumqttc::ConnectionError::RequestsDone) => return,
                        Err(e) => {
                            warn_throttled(&format!("broker connection: {e}; retrying"));
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            });
            clients.push(client);
        }
        Ok(Self { clients, incoming })
    }

    /// Publishes to every broker (QoS 1).
    pub async fn publish(&self, topic: &str, retain: bool, payload: impl Into<Vec<u8>>) {
        let payload = payload.into();
        for client in &self.clients {
            if let Err(e) = client
                .publish(topic, QoS::AtLeastOnce, retain, payload.clone())
                .await
            {
                warn_throttled(&format!("cannot publish to {topic}: {e}"));
            }
        }
    }

    /// Disconnects cleanly (no last will); used for simulated reboots.
    pub async fn disconnect(&self) {
        for client in &self.clients {
            let _ = client.disconnect().await;
        }
    }
}

/// A warning on stderr, at most one every five seconds (a lost broker would otherwise flood it).
fn warn_throttled(message: &str) {
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    if let Ok(mut last) = LAST.lock() {
        if last.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
            *last = Some(std::time::Instant::now());
            eprintln!("devicehub-sim: {message}");
        }
    }
}
