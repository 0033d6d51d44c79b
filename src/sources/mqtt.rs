//! The MQTT source: a persistent session subscribed to every device topic (optionally as a
//! shared subscription), handing each publish to ingest and writing the acknowledgements ingest
//! hands back — only after journaling, in one flush per batch, and only on the connection the
//! messages came on (after a reconnect the broker sends unacknowledged messages again, marked
//! DUP, and ingest recognises them).
//!
//! Shutdown: the source stops reading, closes its hand-off, writes the acknowledgements ingest
//! still owes for what it had, and disconnects cleanly; the broker keeps the rest for the next
//! start.

use std::sync::Arc;

use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS, SubscribeFilter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::configuration::MqttSettings;
use crate::metrics::MqttMetrics;
use crate::pipeline::{Ack, AckQueue, Incoming};
use crate::retry::Backoff;
use crate::stores::broker;

/// The most messages handed to ingest and not yet taken.
pub const HANDOFF: usize = 8192;

pub struct MqttSource {
    client: AsyncClient,
    eventloop: EventLoop,
    filters: Vec<SubscribeFilter>,
    handoff: mpsc::Sender<Incoming>,
    acks: Arc<AckQueue>,
    metrics: MqttMetrics,
}

impl MqttSource {
    /// A source subscribing to `topics`, handing messages to ingest through `handoff` (of
    /// [`HANDOFF`] messages: while ingest is behind — the journal full, a slow disk — the source
    /// stops reading, and the broker keeps the rest).
    pub fn new(
        settings: &MqttSettings,
        topics: Vec<String>,
        (acks, metrics): (Arc<AckQueue>, MqttMetrics),
        handoff: mpsc::Sender<Incoming>,
    ) -> Result<Self, broker::BrokerUrlError> {
        let mut options = broker::options(settings, &settings.client_id, true)?;
        options.set_manual_acks(true);
        let (client, eventloop) = AsyncClient::new(options, 64);
        let group = settings.shared_group.trim();
        let filters = topics
            .into_iter()
            .map(|t| {
                let filter = if group.is_empty() {
                    t
                } else {
                    format!("$share/{group}/{t}")
                };
                SubscribeFilter::new(filter, QoS::AtLeastOnce)
            })
            .collect();
        metrics.connected("collector", false);
        let source = Self {
            client,
            eventloop,
            filters,
            handoff,
            acks,
            metrics,
        };
        Ok(source)
    }

    /// Receives until `shutdown`, reconnecting with backoff.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut backoff = Backoff::new();
        let mut connected = false;
        let mut connection = 0u64;
        loop {
            // Owed acks interrupt a wait for the broker (rumqttc's poll resumes where it was:
            // its reads are buffered and its events queued).
            let event = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = self.acks.ready() => {
                    write_acks(&mut self.eventloop, &self.acks, connection).await;
                    continue;
                }
                event = self.eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!("collector connected to the broker");
                    connected = true;
                    self.metrics.connected("collector", true);
                    connection += 1;
                    backoff.reset();
                    if let Err(e) = self.client.subscribe_many(self.filters.clone()).await {
                        tracing::error!(error = %e, "cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let ack = (publish.qos == QoS::AtLeastOnce).then_some(Ack {
                        connection,
                        packet_id: publish.pkid,
                    });
                    let incoming = Incoming {
                        topic: publish.topic,
                        payload: publish.payload,
                        redelivered: publish.dup,
                        retained: publish.retain,
                        ack,
                    };
                    // Full: wait for ingest, still writing the acknowledgements it hands back.
                    let mut sent = std::pin::pin!(self.handoff.send(incoming));
                    loop {
                        tokio::select! {
                            biased;
                            () = shutdown.cancelled() => break,
                            () = self.acks.ready() => {
                                write_acks(&mut self.eventloop, &self.acks, connection).await;
                            }
                            result = &mut sent => {
                                if result.is_err() {
                                    anyhow::bail!("ingest stopped taking messages");
                                }
                                break;
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if connected {
                        tracing::warn!(error = %e, "collector lost the broker; reconnecting");
                        connected = false;
                        self.metrics.connected("collector", false);
                    } else if backoff.is_first() {
                        tracing::warn!(error = %e, "collector cannot reach the broker; retrying");
                    }
                    tokio::select! {
                        () = backoff.wait() => {}
                        () = shutdown.cancelled() => break,
                    }
                }
            }
        }
        self.metrics.connected("collector", false);
        self.stop(connection).await;
        Ok(())
    }

    /// Closes the hand-off, writes what ingest still acknowledges, and disconnects.
    async fn stop(self, connection: u64) {
        let MqttSource {
            mut eventloop,
            handoff,
            acks,
            ..
        } = self;
        drop(handoff);
        while !acks.is_closed() {
            acks.ready().await;
            write_acks(&mut eventloop, &acks, connection).await;
        }
        write_acks(&mut eventloop, &acks, connection).await;
        if let Some(network) = eventloop.network.as_mut() {
            let _ = network.write(Packet::Disconnect).await;
            let _ = network.flush().await;
        }
    }
}

/// Writes PUBACKs for messages of the current connection and flushes once. Acks of an earlier
/// connection are dropped: the broker sends those messages again (marked DUP), and they are
/// acknowledged then, when ingest recognises them.
async fn write_acks(eventloop: &mut EventLoop, acks: &AckQueue, connection: u64) {
    let acks = acks.take();
    let Some(network) = eventloop.network.as_mut() else {
        return;
    };
    let mut written = false;
    for ack in acks.into_iter().filter(|a| a.connection == connection) {
        if let Err(e) = network
            .write(Packet::PubAck(rumqttc::PubAck::new(ack.packet_id)))
            .await
        {
            tracing::warn!(error = ?e, "cannot acknowledge messages (the broker will send them again)");
            return;
        }
        written = true;
    }
    if written {
        if let Err(e) = network.flush().await {
            tracing::warn!(error = ?e, "cannot acknowledge messages (the broker will send them again)");
        }
    }
}
