//! Login limits that fit real deployments.
//!
//! - **Who the client is**: the TCP peer, unless the peer is one of `http.trusted_proxies`; then
//!   the right-most address of `X-Forwarded-For` (or `Forwarded: for=`) that is not itself a
//!   trusted proxy. Headers from anyone else are ignored, so they cannot be forged to dodge a
//!   limit.
//! - **Per client network**: `auth.login_attempts_per_minute` attempts per network — an IPv6
//!   /64 (what one household or host gets), an IPv4 address, and all of loopback as one (a host
//!   rotating through 127.0.0.0/8 or its IPv6 addresses is one client).
//! - **Per account and network, with backoff**: after [`FREE_FAILURES`] wrong passwords for one
//!   account from one network, that network waits 1 s, 2 s, 4 s… (at most [`MAX_BACKOFF`])
//!   before trying that account again: a guessed account slows down whoever guesses, not its
//!   owner on another network.
//! - **Per account, across networks**: at most [`ACCOUNT_FAILURES_PER_HOUR`] wrong passwords an
//!   hour from networks that never logged in to it; beyond that only networks that have (in
//!   the last 30 days, as this process remembers) may try it, so addresses by the thousand do
//!   not buy more guesses, and the owner is not locked out.
//!
//! The state is in memory, per API process.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::error::ApiError;

/// Wrong passwords for one account from one network before it waits.
pub const FREE_FAILURES: u32 = 3;
/// The longest a network waits before trying an account again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Wrong passwords an hour, for one account, from networks that never logged in to it.
pub const ACCOUNT_FAILURES_PER_HOUR: u32 = 100;
/// How long a network that logged in to an account is remembered as the account's.
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Entries kept at most in each table (the oldest idle ones go first).
const MAX_ENTRIES: usize = 100_000;

/// A client's network, the unit the limits count by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    Loopback,
    V4(std::net::Ipv4Addr),
    /// The /64 prefix.
    V6(u64),
}

impl Network {
    pub fn of(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            _ if ip.is_loopback() => Network::Loopback,
            IpAddr::V4(v4) => Network::V4(v4),
            IpAddr::V6(v6) => Network::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Network::Loopback => write!(f, "loopback"),
            Network::V4(v4) => write!(f, "{v4}"),
            Network::V6(prefix) => write!(f, "{}/64", Ipv6Addr::from(u128::from(*prefix) << 64)),
        }
    }
}

/// The address a request comes from, trusting forwarding headers only from `trusted` proxies.
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    // Each proxy appends the address it got the request from: the right-most untrusted one is
    // the client as the nearest trusted proxy saw it.
    let mut chain: Vec<IpAddr> = Vec::new();
    for value in req.headers().get_all("forwarded") {
        let Ok(value) = value.to_str() else { continue };
        for element in value.split(',') {
            for pair in element.split(';') {
                let Some((key, node)) = pair.trim().split_once('=') else {
                    continue;
                };
                if key.trim().eq_ignore_ascii_case("for") {
                    if let Some(ip) = forwarded_node(node) {
                        chain.push(ip);
                    }
                }
            }
        }
    }
    if chain.is_empty() {
        for value in req.headers().get_all("x-forwarded-for") {
            let Ok(value) = value.to_str() else { continue };
            chain.extend(
                value
                    .split(',')
                    .filter_map(|a| a.trim().parse::<IpAddr>().ok()),
            );
        }
    }
    Some(
        chain
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .unwrap_or(peer),
    )
}

/// A `Forwarded` node (RFC 7239): `192.0.2.43`, `"[2001:db8::1]:4711"`, `"192.0.2.43:47011"`.
fn forwarded_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    node.parse()
        .ok()
        .or_else(|| node.rsplit_once(':')?.0.parse().ok())
}

#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    until: Instant,
    last: Instant,
}

#[derive(Debug, Default)]
struct Tables {
    /// (account, network): wrong passwords in a row and when the next try is allowed.
    backoff: HashMap<(String, Network), Backoff>,
    /// account: wrong passwords from unknown networks in the current hour, and its start.
    account: HashMap<String, (u32, Instant)>,
    /// (account, network): the last successful login.
    known: HashMap<(String, Network), Instant>,
}

/// The login limits of one API process.
pub struct LoginLimits {
    per_network: DefaultKeyedRateLimiter<Network>,
    tables: Mutex<Tables>,
}

impl LoginLimits {
    pub fn new(attempts_per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(attempts_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            per_network: RateLimiter::keyed(Quota::per_minute(per_minute)),
            tables: Mutex::default(),
        }
    }

    /// Whether `network` may try `account` now; an attempt is counted against the network.
    pub fn admit(&self, network: Network, account: &str) -> Result<(), ApiError> {
        if self.per_network.len() > MAX_ENTRIES {
            self.per_network.retain_recent();
        }
        self.per_network.check_key(&network).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs().max(1),
            }
        })?;
        let now = Instant::now();
        let tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let key = (account.to_owned(), network);
        if let Some(b) = tables.backoff.get(&key).filter(|b| b.until > now) {
            return Err(ApiError::RateLimited {
                retry_after_secs: (b.until - now).as_secs().max(1),
            });
        }
        let known = tables
            .known
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < KNOWN_FOR);
        if let Some((failures, since)) = tables.account.get(account) {
            let hour = Duration::from_secs(3600);
            if !known && *failures >= ACCOUNT_FAILURES_PER_HOUR && now.duration_since(*since) < hour
            {
                return Err(ApiError::RateLimited {
                    retry_after_secs: (hour - now.duration_since(*since)).as_secs().max(1),
                });
            }
        }
        Ok(())
    }

    /// Records how `network`'s attempt at `account` went.
    pub fn record(&self, network: Network, account: &str, success: bool) {
        let now = Instant::now();
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let key = (account.to_owned(), network);
        if success {
            tables.backoff.remove(&key);
            tables.known.insert(key, now);
            prune(&mut tables.known, |at| now.duration_since(*at) < KNOWN_FOR);
            return;
        }
        let known = tables
            .known
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < KNOWN_FOR);
        let b = tables.backoff.entry(key).or_insert(Backoff {
            failures: 0,
            until: now,
            last: now,
        });
        b.failures += 1;
        b.last = now;
        if b.failures >= FREE_FAILURES {
            let exponent = (b.failures - FREE_FAILURES).min(20);
            b.until = now + Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF);
        }
        prune(&mut tables.backoff, |b| {
            now.duration_since(b.last) < MAX_BACKOFF * 4
        });
        if !known {
            let hour = Duration::from_secs(3600);
            let entry = tables.account.entry(account.to_owned()).or_insert((0, now));
            if now.duration_since(entry.1) >= hour {
                *entry = (0, now);
            }
            entry.0 += 1;
            prune(&mut tables.account, |(_, since)| {
                now.duration_since(*since) < hour
            });
        }
    }
}

/// Keeps a table under [`MAX_ENTRIES`]: entries for which `keep` is false go first.
fn prune<K, V>(table: &mut HashMap<K, V>, keep: impl Fn(&V) -> bool) {
    if table.len() > MAX_ENTRIES {
        table.retain(|_, v| keep(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_slash_64s_addresses_and_one_loopback() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            Network::of(ip("2001:db8:1:2::1")),
            Network::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Network::of(ip("2001:db8:1:2::1")),
            Network::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(Network::of(ip("127.0.0.1")), Network::of(ip("127.8.9.10")));
        assert_eq!(Network::of(ip("::1")), Network::Loopback);
        assert_eq!(
            Network::of(ip("::ffff:192.0.2.7")),
            Network::of(ip("192.0.2.7"))
        );
        assert_ne!(Network::of(ip("192.0.2.7")), Network::of(ip("192.0.2.8")));
        assert_eq!(
            Network::of(ip("2001:db8:1:2::1")).to_string(),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn forwarded_nodes_of_rfc_7239_parse() {
        assert_eq!(
            forwarded_node("192.0.2.43"),
            Some("192.0.2.43".parse().unwrap())
        );
        assert_eq!(
            forwarded_node("\"[2001:db8:cafe::17]:4711\""),
            Some("2001:db8:cafe::17".parse().unwrap())
        );
        assert_eq!(
            forwarded_node("\"192.0.2.43:47011\""),
            Some("192.0.2.43".parse().unwrap())
        );
        assert_eq!(forwarded_node("unknown"), None);
    }

    #[test]
    fn a_guessing_network_backs_off_and_the_owner_elsewhere_does_not() {
        let limits = LoginLimits::new(1000);
        let (guesser, owner) = (
            Network::V4([192, 0, 2, 1].into()),
            Network::V4([198, 51, 100, 1].into()),
        );
        for _ in 0..FREE_FAILURES {
            limits.admit(guesser, "ann").unwrap();
            limits.record(guesser, "ann", false);
        }
        assert!(matches!(
            limits.admit(guesser, "ann"),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(limits.admit(guesser, "bob").is_ok(), "another account");
        assert!(limits.admit(owner, "ann").is_ok(), "the owner elsewhere");
    }

    #[test]
    fn an_account_guessed_from_many_networks_admits_only_known_ones() {
        let limits = LoginLimits::new(1000);
        let home = Network::V4([198, 51, 100, 1].into());
        limits.record(home, "ann", true);
        for i in 0..ACCOUNT_FAILURES_PER_HOUR {
            let network = Network::V6(u64::from(i) + 1);
            limits.admit(network, "ann").unwrap();
            limits.record(network, "ann", false);
        }
        assert!(matches!(
            limits.admit(Network::V6(999_999), "ann"),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(
            limits.admit(home, "ann").is_ok(),
            "a network that logged in before"
        );
    }
}
