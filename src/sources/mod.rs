//! Sources: where data enters devicehub. The MQTT broker hands messages to the pipeline's
//! ingest; the Mikrotik poller keeps the router's lease and Wi-Fi snapshots in the lake (for the
//! inventory; `routeros.rs` reads RouterOS's answers). The Shelly poller hands readings to
//! ingest like MQTT, the HikVision cameras their detections as events; `http_auth.rs` answers
//! their digest and basic challenges.

pub mod hikvision;
pub mod http_auth;
pub mod mikrotik;
pub mod mqtt;
pub mod routeros;
pub mod shelly;

/// The causes of an error, outermost first (reqwest's own message hides the TLS or I/O reason).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
