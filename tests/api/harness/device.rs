//! A device on the real broker, for collector tests.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use serde_json::Value;
use tokio::sync::mpsc;

pub struct Device {
    pub client: AsyncClient,
    received: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    task: tokio::task::JoinHandle<()>,
}

impl Device {
    /// Connects to the local broker, optionally with a last will, and subscribes to `topics`.
    pub async fn connect(topics: &[String], will: Option<(String, Vec<u8>)>) -> Self {
        let id = format!("test-device-{}", uuid::Uuid::new_v4().simple());
        let mut options = MqttOptions::new(id, "127.0.0.1", 1883);
        options
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(4 << 20, 4 << 20);
        if let Some((topic, payload)) = will {
            options.set_last_will(LastWill::new(topic, payload, QoS::AtLeastOnce, true));
        }
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        let (tx, received) = mpsc::unbounded_channel();
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let _ = tx.send((p.topic.clone(), p.payload.to_vec()));
                    }
                    Ok(Event::Incoming(Packet::SubAck(_)))
                    | Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        ready_rx.recv().await;
        for topic in topics {
            client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
            ready_rx.recv().await;
        }
        Self {
            client,
            received,
            task,
        }
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .unwrap();
    }

    pub async fn publish_json(&self, topic: &str, payload: &Value) {
        self.publish(topic, payload.to_string()).await;
    }

    /// The next message on a subscribed topic, within `secs`.
    pub async fn next(&mut self, secs: u64) -> (String, Value) {
        let (topic, bytes) = tokio::time::timeout(Duration::from_secs(secs), self.received.recv())
            .await
            .expect("a message within the time limit")
            .expect("device connection open");
        (topic, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Ends the connection without DISCONNECT, as a device losing power (the broker then sends
    /// its last will).
    pub fn drop_connection(self) {
        self.task.abort();
    }
}
