//! HTTP clients for the devices on the LAN and their typed answers: the Mikrotik router's
//! RouterOS REST ([`mikrotik`], [`routeros`]), Shelly devices ([`shelly`]) and HikVision
//! cameras ([`hikvision`]); [`http_auth`] answers their digest and basic challenges. The
//! pollers in `sources/`, the inventory, the outbox and the API all use them from here, so none
//! of them imports a source.

pub mod hikvision;
pub mod http_auth;
pub mod mikrotik;
pub mod pinning;
pub mod routeros;
pub mod shelly;

/// Where devicehub's own connections to devices may go: `network.device_subnets` (by default
/// loopback and the router's LAN, the /24 around `mikrotik.url`'s address), and the hosts the
/// operator configured. A device record (its `http`) pointing anywhere else is refused, so it
/// cannot aim devicehub, and the credentials it would send, at another service.
#[derive(Debug, Clone, Default)]
pub struct DeviceNetworks {
    nets: Vec<ipnet::IpNet>,
    hosts: std::collections::HashSet<String>,
}

impl DeviceNetworks {
    pub fn from_settings(
        settings: &crate::configuration::Settings,
    ) -> Result<Self, crate::configuration::SettingsError> {
        let mut nets = settings.network.subnets()?;
        if nets.is_empty() {
            nets.extend(
                ["127.0.0.0/8", "::1/128"]
                    .iter()
                    .filter_map(|n| n.parse::<ipnet::IpNet>().ok()),
            );
            let router = settings
                .mikrotik
                .url()
                .and_then(|u| url::Url::parse(u).ok())
                .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_owned()))
                .and_then(|h| h.parse::<std::net::IpAddr>().ok());
            if let Some(router) = router {
                let prefix = if router.is_ipv4() { 24 } else { 64 };
                if let Ok(lan) = ipnet::IpNet::new(router, prefix) {
                    nets.push(lan.trunc());
                }
            }
        }
        let hosts = settings
            .shelly
            .hosts
            .iter()
            .chain(&settings.shelly.gen1_hosts)
            .chain(&settings.hikvision.hosts)
            .map(|h| host_part(h).to_owned())
            .collect();
        Ok(Self { nets, hosts })
    }

    /// Networks given directly (tests, tools).
    pub fn of(nets: Vec<ipnet::IpNet>) -> Self {
        Self {
            nets,
            hosts: Default::default(),
        }
    }

    /// Whether `host` (`address[:port]`, `[v6]:port` or `name[:port]`) may be connected to.
    pub fn allows(&self, host: &str) -> bool {
        let part = host_part(host);
        if self.hosts.contains(part) {
            return true;
        }
        part.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| self.nets.iter().any(|n| n.contains(&ip)))
    }
}

/// `builder` trusting `trust` (pinned certificates) when there is one, else the system's roots.
pub fn with_trust(
    builder: reqwest::ClientBuilder,
    trust: Option<pinning::Trust>,
) -> anyhow::Result<reqwest::ClientBuilder> {
    Ok(match trust {
        Some(trust) => builder.use_preconfigured_tls(trust.client_config()?),
        None => builder,
    })
}

/// A device's base URL: `https://host[:port]` or `http://host[:port]` as given, and a bare
/// `host[:port]` over plain HTTP (what a LAN device serves by default).
pub fn base_url(host: &str) -> String {
    if host.starts_with("https://") || host.starts_with("http://") {
        host.trim_end_matches('/').to_owned()
    } else {
        format!("http://{host}")
    }
}

/// The host of `[scheme://]host[:port]` (an IPv6 address in brackets, or bare).
pub fn host_part(host: &str) -> &str {
    let host = host
        .strip_prefix("https://")
        .or_else(|| host.strip_prefix("http://"))
        .unwrap_or(host)
        .trim_end_matches('/');
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.parse::<u16>().is_ok() => name,
        _ => host,
    }
}

/// A response's body, read as it arrives and refused past `limit` bytes (`None`), so a device's
/// answer can never take more memory than that. devicehub asks no device for a compressed answer
/// (reqwest's transparent decompression is not built in), so the bytes counted are the bytes
/// kept: a small gzip bomb stays a small, unreadable answer. Time is bounded by the request's
/// own timeout, which reqwest applies until the body has finished.
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The causes of an error, outermost first (reqwest's own message hides the TLS or I/O reason);
/// a cause whose text its outer error already shows is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let cause = s.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = s.source();
    }
    text
}
