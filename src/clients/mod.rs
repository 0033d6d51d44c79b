//! HTTP clients for the devices on the LAN and their typed answers: the Mikrotik router's
//! RouterOS REST ([`mikrotik`], [`routeros`]), Shelly devices ([`shelly`]) and HikVision
//! cameras ([`hikvision`]); [`http_auth`] answers their digest and basic challenges. The
//! pollers in `sources/`, the inventory, the outbox and the API all use them from here, so none
//! of them imports a source.

pub mod hikvision;
pub mod http_auth;
pub mod mikrotik;
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
