//! Readings for the stream clients of an API process that does not run the collector (the API
//! replicas of a split deployment): an MQTT connection of its own that subscribes to the topics
//! of the devices clients watch, and only those, while they watch them (QoS 0, a clean session:
//! live views want what happens now, not a replay). What it hears is decoded as the collector
//! decodes it and handed to the hub; nothing is stored.

use std::collections::HashSet;

use chrono::Utc;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Hub;
use crate::configuration::MqttSettings;
use crate::retry::Backoff;
use crate::wire::Decoder;

pub struct Relay {
    hub: Hub,
    decoder: Decoder,
    options: MqttOptions,
}

/// What the connection's event loop tells the relay.
enum Heard {
    Connected,
    Message(String, bytes::Bytes),
}

impl Relay {
    pub fn new(settings: &MqttSettings, client_id: &str, hub: Hub) -> anyhow::Result<Self> {
        let options = crate::stores::broker::options(settings, client_id, false)?;
        Ok(Self {
            hub,
            decoder: Decoder::from_settings(settings),
            options,
        })
    }

    /// Follows the watched devices until `shutdown`.
    pub async fn run(
        self: std::sync::Arc<Self>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let (client, mut eventloop) = AsyncClient::new(self.options.clone(), 256);
        let (heard, mut hearing) = mpsc::channel(1024);
        // The event loop runs apart, so that (un)subscribing never waits on a loop not polled.
        let stop = shutdown.clone();
        let connection = tokio::spawn(async move {
            let mut backoff = Backoff::new();
            loop {
                let event = tokio::select! {
                    () = stop.cancelled() => return,
                    event = eventloop.poll() => event,
                };
                let heard_now = match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff.reset();
                        Heard::Connected
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => Heard::Message(p.topic, p.payload),
                    Ok(_) => continue,
                    Err(e) => {
                        if backoff.is_first() {
                            tracing::warn!(error = %e, "the live relay cannot reach the broker; retrying");
                        }
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = backoff.wait() => continue,
                        }
                    }
                };
                // Full: a live view may miss readings, the connection must not stall.
                let _ = heard.try_send(heard_now);
            }
        });
        let _abort = AbortOnDrop(connection);
        let mut subscribed: HashSet<String> = HashSet::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.hub.watched_changed() => {
                    self.follow(&client, &mut subscribed).await;
                }
                heard = hearing.recv() => match heard {
                    // A clean session: subscribe again to everything watched.
                    Some(Heard::Connected) => {
                        subscribed.clear();
                        self.follow(&client, &mut subscribed).await;
                    }
                    Some(Heard::Message(topic, payload)) => {
                        if let Ok(message) = self.decoder.decode(&topic, &payload, Utc::now()) {
                            self.hub.publish_readings([&message]);
                        }
                    }
                    None => break,
                },
            }
        }
        let _ = client.try_disconnect();
        Ok(())
    }

    /// Subscribes to the devices newly watched and unsubscribes from those no longer watched.
    async fn follow(&self, client: &AsyncClient, subscribed: &mut HashSet<String>) {
        let watched = self.hub.watched();
        let new: Vec<SubscribeFilter> = watched
            .difference(subscribed)
            .flat_map(|device| self.decoder.reading_topics(device))
            .map(|topic| SubscribeFilter::new(topic, QoS::AtMostOnce))
            .collect();
        for gone in subscribed.difference(&watched) {
            for topic in self.decoder.reading_topics(gone) {
                if let Err(e) = client.unsubscribe(topic).await {
                    tracing::warn!(error = %e, "the live relay cannot unsubscribe");
                }
            }
        }
        if !new.is_empty() {
            if let Err(e) = client.subscribe_many(new).await {
                tracing::warn!(error = %e, "the live relay cannot subscribe");
            }
        }
        *subscribed = watched;
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
