//! The MQTT broker as devicehub's other parts use it: connection options from settings (the one
//! place that reads `mqtt.url`), and a [`Publisher`] with its own connection for commands,
//! acknowledgements and dead letters.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS, Transport};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::configuration::MqttSettings;
use crate::retry::Backoff;

/// The largest packet accepted from the broker. Payloads above `mqtt.max_payload_bytes` are
/// dead-lettered by the decoder, but the connection must still accept them: a packet over this
/// limit would drop the connection and the broker would redeliver it forever.
pub const MAX_INCOMING_PACKET: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BrokerUrlError {
    #[error("invalid mqtt.url: {0}")]
    Invalid(String),
    #[error("cannot read {setting} {path}: {error}")]
    File {
        setting: &'static str,
        path: String,
        error: std::io::Error,
    },
    #[error("mqtt.client_cert_file and mqtt.client_key_file go together: set both or neither")]
    HalfClientIdentity,
}

fn read(setting: &'static str, path: &std::path::Path) -> Result<Vec<u8>, BrokerUrlError> {
    std::fs::read(path).map_err(|error| BrokerUrlError::File {
        setting,
        path: path.display().to_string(),
        error,
    })
}

/// The TLS setup for `mqtts://`: the system's roots, or `mqtt.ca_file` (a CA, or the broker's
/// own certificate, pinned) and `mqtt.fingerprint` (see [`crate::clients::pinning`]); a client
/// certificate when `mqtt.client_cert_file` and `mqtt.client_key_file` are set.
fn tls(settings: &MqttSettings) -> Result<Transport, BrokerUrlError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let identity = match (&settings.client_cert_file, &settings.client_key_file) {
        (Some(cert), Some(key)) => Some((
            read("mqtt.client_cert_file", cert)?,
            read("mqtt.client_key_file", key)?,
        )),
        (None, None) => None,
        _ => return Err(BrokerUrlError::HalfClientIdentity),
    };
    let trust = crate::clients::pinning::Trust::from_settings(
        settings.ca_file.as_deref(),
        settings.fingerprint.as_deref(),
        "mqtt",
    )
    .map_err(|e| BrokerUrlError::Invalid(format!("{e:#}")))?;
    let Some(trust) = trust else {
        return match identity {
            None => Ok(Transport::tls_with_default_config()),
            Some(_) => Err(BrokerUrlError::Invalid(
                "a client certificate needs mqtt.ca_file (the CA of the broker's certificate)"
                    .into(),
            )),
        };
    };
    let identity = match identity {
        None => None,
        Some((cert, key)) => {
            let invalid = |what: &str, e: rustls::pki_types::pem::Error| {
                BrokerUrlError::Invalid(format!("{what}: {e}"))
            };
            let chain = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid("mqtt.client_cert_file", e))?;
            let key = PrivateKeyDer::from_pem_slice(&key)
                .map_err(|e| invalid("mqtt.client_key_file", e))?;
            Some((chain, key))
        }
    };
    let config = trust
        .client_config_with(identity)
        .map_err(|e| BrokerUrlError::Invalid(format!("{e:#}")))?;
    Ok(Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(std::sync::Arc::new(config)),
    ))
}

/// Options for a connection with `client_id`; `persistent` keeps the broker session (and its
/// queued QoS 1 messages) while the client is away.
pub fn options(
    settings: &MqttSettings,
    client_id: &str,
    persistent: bool,
) -> Result<MqttOptions, BrokerUrlError> {
    let url = url::Url::parse(settings.url.expose_secret())
        .map_err(|e| BrokerUrlError::Invalid(e.to_string()))?;
    let tls = match url.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => {
            return Err(BrokerUrlError::Invalid(format!(
                "scheme {other:?}; use mqtt:// or mqtts://"
            )))
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| BrokerUrlError::Invalid("no host".into()))?;
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_keep_alive(Duration::from_secs(settings.keep_alive_secs.max(5)))
        .set_clean_session(!persistent)
        .set_max_packet_size(MAX_INCOMING_PACKET, MAX_INCOMING_PACKET)
        .set_inflight(1000);
    if !url.username().is_empty() {
        let password = url.password().unwrap_or_default();
        let user = percent_decode(url.username());
        options.set_credentials(user, percent_decode(password));
    }
    if tls {
        options.set_transport(self::tls(settings)?);
    } else if settings.ca_file.is_some()
        || settings.fingerprint.is_some()
        || settings.client_cert_file.is_some()
    {
        return Err(BrokerUrlError::Invalid(
            "mqtt.ca_file, mqtt.fingerprint and client certificates need an mqtts:// URL".into(),
        ));
    }
    Ok(options)
}

/// The user or password of a URL as written, `%XX` decoded (RFC 3986): a `+` stays a plus (form
/// decoding, which this once was, turned it into a space, so a generated password with a `+`
/// could never log in).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A publishing connection, for commands, ACKs and dead letters. Its event loop
/// ([`PublisherLoop`]) runs as a supervised task.
#[derive(Clone)]
pub struct Publisher {
    client: AsyncClient,
    connected: Arc<AtomicBool>,
}

/// The publisher's connection: connects, reconnects with backoff, and on shutdown sends what is
/// queued before it disconnects.
pub struct PublisherLoop {
    client: AsyncClient,
    eventloop: EventLoop,
    connected: Arc<AtomicBool>,
}

impl Publisher {
    /// A publisher whose connection is made once its [`PublisherLoop`] runs.
    pub fn new(
        settings: &MqttSettings,
        client_id: &str,
    ) -> Result<(Self, PublisherLoop), BrokerUrlError> {
        // Persistent: rumqttc resends unacknowledged publishes after a reconnect only for a
        // session the broker kept.
        let options = options(settings, client_id, true)?;
        let (client, eventloop) = AsyncClient::new(options, 4096);
        let connected = Arc::new(AtomicBool::new(false));
        let publisher = Self {
            client: client.clone(),
            connected: connected.clone(),
        };
        let connection = PublisherLoop {
            client,
            eventloop,
            connected,
        };
        Ok((publisher, connection))
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Queues a QoS 1 publish; fails only when the local request queue is full.
    pub fn publish(
        &self,
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), rumqttc::ClientError> {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
    }
}

impl PublisherLoop {
    /// Runs the connection until `shutdown`, then sends the queued publishes (requests are sent
    /// in order, the disconnect last) and returns once the broker has them.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut backoff = Backoff::new();
        loop {
            let event = tokio::select! {
                event = self.eventloop.poll() => event,
                () = shutdown.cancelled() => break,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    self.connected.store(true, Ordering::Release);
                    backoff.reset();
                }
                Ok(_) => {}
                Err(e) => {
                    if self.connected.swap(false, Ordering::AcqRel) {
                        tracing::warn!(error = %e, "MQTT publisher disconnected; reconnecting");
                    } else if backoff.is_first() {
                        tracing::warn!(error = %e, "MQTT publisher cannot reach the broker; retrying");
                    }
                    tokio::select! {
                        () = backoff.wait() => {}
                        () = shutdown.cancelled() => break,
                    }
                }
            }
        }
        if !self.connected.load(Ordering::Acquire) {
            return Ok(());
        }
        // Queued after everything already requested: the event loop sends those first.
        if self.client.try_disconnect().is_err() {
            return Ok(());
        }
        loop {
            match self.eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return Ok(()),
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn settings(url: &str) -> MqttSettings {
        MqttSettings {
            url: SecretString::from(url.to_owned()),
            client_id: "c".into(),
            shared_group: String::new(),
            keep_alive_secs: 30,
            iot_prefix: "iot".into(),
            qs_prefix: "qs/v1".into(),
            deadletter_topic: "devicehub/deadletter".into(),
            max_payload_bytes: 1024,
            unknown_devices: crate::configuration::UnknownDevicePolicy::Register,
            unknown_devices_by_protocol: Default::default(),
            registrations_per_minute: 10,
            local_timezone: "UTC".into(),
            ca_file: None,
            fingerprint: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }

    #[test]
    fn broker_urls_give_host_port_and_credentials() {
        let o = options(&settings("mqtt://127.0.0.1:1884"), "c", true).unwrap();
        assert_eq!(o.broker_address(), ("127.0.0.1".to_owned(), 1884));
        assert!(!o.clean_session());
        let o = options(&settings("mqtts://user:p%40ss@broker.lan"), "c", false).unwrap();
        assert_eq!(o.broker_address().1, 8883);
        let login = o.credentials().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("user", "p@ss")
        );
        // As `openssl rand -base64` makes them: `+` and `/` (percent-encoded, as URLs need).
        let o = options(
            &settings("mqtt://svc:a+b%2Fc%2B%20d@broker.lan"),
            "c",
            false,
        )
        .unwrap();
        let login = o.credentials().unwrap();
        assert_eq!(login.password, "a+b/c+ d");
        assert!(options(&settings("http://x"), "c", false).is_err());
    }
}
