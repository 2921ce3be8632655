//! Keyed token-bucket rate limits, per process (each replica limits on its own), and who
//! the client of a request is.
//!
//! A key gets `burst` actions at once and `burst` more every `period`; past that the
//! request is refused with 429 and `Retry-After`. A check is one hash lookup in one of 16
//! shards, whatever the number of keys: idle buckets are pruned by a timer
//! ([`RateLimiter::prune`], run by [`RateLimiter::pruner`]), never during a check.
//!
//! The client is the address a request came from as seen through the configured trusted
//! proxies only ([`TrustedProxies`]): `X-Forwarded-For` is believed hop by hop from the
//! right while the hop is a trusted proxy, so a client cannot pick its own key by sending
//! the header. IPv6 clients are keyed by their /64 (one subscriber's network).

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use crate::config::{ConfigError, Env};

const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Limits how often each key may act. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    shards: Arc<[Mutex<HashMap<String, Bucket>>; SHARDS]>,
    hasher: std::collections::hash_map::RandomState,
    burst: f64,
    per_second: f64,
}

impl RateLimiter {
    /// `burst` actions at once, refilled at `burst` per `period`.
    pub fn new(burst: u32, period: Duration) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            shards: Arc::new(std::array::from_fn(|_| Mutex::default())),
            hasher: std::collections::hash_map::RandomState::new(),
            burst,
            per_second: burst / period.as_secs_f64().max(0.001),
        }
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, Bucket>> {
        &self.shards[usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0)]
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        bucket.tokens = (bucket.tokens + now.saturating_duration_since(bucket.updated).as_secs_f64() * self.per_second)
            .min(self.burst);
        bucket.updated = now;
    }

    fn wait(&self, bucket: &Bucket) -> Duration {
        Duration::from_secs_f64((1.0 - bucket.tokens).max(0.0) / self.per_second)
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// [`Self::check`] at a given time (tests).
    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        // Never held across an await: the critical section is a few arithmetic steps.
        let mut shard = self.shard(key).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = shard.entry(key.to_owned()).or_insert(Bucket { tokens: self.burst, updated: now });
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.wait(bucket))
        }
    }

    /// Whether `key` has a token left, without taking it (a limit on failures: look first,
    /// take only when the attempt fails).
    pub fn allows(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut shard = self.shard(key).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match shard.get_mut(key) {
            None => Ok(()),
            Some(bucket) => {
                self.refill(bucket, now);
                if bucket.tokens >= 1.0 { Ok(()) } else { Err(self.wait(bucket)) }
            }
        }
    }

    /// Takes a token for `key` whether or not one is left (a failure happened).
    pub fn consume(&self, key: &str) {
        let now = Instant::now();
        let mut shard = self.shard(key).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = shard.entry(key.to_owned()).or_insert(Bucket { tokens: self.burst, updated: now });
        self.refill(bucket, now);
        bucket.tokens = (bucket.tokens - 1.0).max(-self.burst);
    }

    /// Drops the buckets that are full again at `now` (they hold nothing a new bucket
    /// would not). Returns how many keys are left.
    pub fn prune(&self, now: Instant) -> usize {
        let (burst, per_second) = (self.burst, self.per_second);
        self.shards
            .iter()
            .map(|shard| {
                let mut shard = shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                shard.retain(|_, b| {
                    b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * per_second < burst
                });
                shard.len()
            })
            .sum()
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A background task pruning every `interval` until `shutdown`.
    pub fn pruner(
        &self,
        interval: Duration,
    ) -> impl FnOnce(tokio_util::sync::CancellationToken) -> futures::future::BoxFuture<'static, ()> + Send + 'static
    {
        let limiter = self.clone();
        move |shutdown| {
            Box::pin(async move {
                let mut tick = tokio::time::interval(interval);
                loop {
                    tokio::select! {
                        _ = tick.tick() => { limiter.prune(Instant::now()); }
                        () = shutdown.cancelled() => break,
                    }
                }
            })
        }
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`: comma-separated
/// CIDRs). By default loopback and the private ranges: inside a cluster the ingress
/// controller (and the web client) reach a service from a private address, and nothing
/// outside can.
#[derive(Debug, Clone)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl Default for TrustedProxies {
    fn default() -> Self {
        Self::parse("127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7")
            .expect("static ranges parse")
    }
}

impl TrustedProxies {
    /// `a.b.c.d/n` or `addr` entries, comma-separated; `none` trusts nobody.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim() == "none" {
            return Ok(Self(Vec::new()));
        }
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let (addr, bits) = entry.split_once('/').unwrap_or((entry, ""));
                let addr: IpAddr = addr.parse().map_err(|_| format!("{entry:?} is not an address or CIDR"))?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let bits =
                    if bits.is_empty() { max } else { bits.parse().map_err(|_| format!("{entry:?}: bad prefix"))? };
                if bits > max {
                    return Err(format!("{entry:?}: prefix longer than {max}"));
                }
                Ok((addr, bits))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        match env.get("TRUSTED_PROXIES") {
            None => Ok(Self::default()),
            Some(text) => Self::parse(text).map_err(|reason| ConfigError::Invalid { name: "TRUSTED_PROXIES", reason }),
        }
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|(net, bits)| in_network(ip, canonical(*net), *bits))
    }

    /// The client's key for a request from `peer`: the first address from the right of
    /// `peer` and the `X-Forwarded-For` chain that is not a trusted proxy (IPv6 as its /64).
    pub fn client_key(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
        let Some(peer) = peer else { return "unknown".to_owned() };
        let mut client = canonical(peer.ip());
        if self.trusts(client) {
            let chain: Vec<IpAddr> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
                .collect();
            for hop in chain.into_iter().rev() {
                client = canonical(hop);
                if !self.trusts(client) {
                    break;
                }
            }
        }
        key_of(client)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits)) };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// An IPv4 address as itself; an IPv6 address as its /64, which one subscriber usually
/// owns whole (rotating within it must not buy new attempts).
fn key_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            format!("{}/64", Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_allowed_then_refused_until_refilled() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        let wait = limiter.check("a").unwrap_err();
        assert!(wait > Duration::from_secs(15) && wait <= Duration::from_secs(20), "{wait:?}");
        assert!(limiter.check("b").is_ok(), "keys are independent");
    }

    #[test]
    fn a_failure_limit_looks_first_and_counts_only_failures() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        assert!(limiter.allows("me@x.co").is_ok());
        limiter.consume("me@x.co");
        assert!(limiter.allows("me@x.co").is_ok(), "one failure left");
        limiter.consume("me@x.co");
        assert!(limiter.allows("me@x.co").is_err());
    }

    #[test]
    fn a_million_keys_are_checked_without_scanning_and_pruned_by_the_timer() {
        let limiter = RateLimiter::new(5, Duration::from_secs(60));
        let start = Instant::now();
        for n in 0..1_000_000u32 {
            assert!(limiter.check_at(&n.to_string(), start).is_ok());
        }
        assert_eq!(limiter.len(), 1_000_000);

        let checks = Instant::now();
        for n in 0..10_000u32 {
            assert!(limiter.check_at(&format!("new-{n}"), start).is_ok());
        }
        let per_check = checks.elapsed() / 10_000;
        assert_eq!(limiter.len(), 1_010_000, "a check never prunes, so it never scans");
        // A lookup, not a scan of a million keys (which takes milliseconds): very loose,
        // so a busy machine cannot make it flake.
        assert!(per_check < Duration::from_micros(500), "{per_check:?} per check");

        assert_eq!(limiter.prune(start + Duration::from_secs(5)), 1_010_000, "nobody is full again yet");
        assert_eq!(limiter.prune(start + Duration::from_secs(13)), 0, "all refilled after a fifth of the period");
    }

    fn headers(xff: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", xff.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_addresses_count_only_through_trusted_proxies() {
        let trusted = TrustedProxies::default();
        let ingress: SocketAddr = "10.0.0.5:5000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.7:5000".parse().unwrap();

        assert_eq!(trusted.client_key(&headers("203.0.113.7"), Some(ingress)), "203.0.113.7");
        assert_eq!(
            trusted.client_key(&headers("1.2.3.4"), Some(stranger)),
            "198.51.100.7",
            "a stranger's header is ignored"
        );
        assert_eq!(
            trusted.client_key(&headers("1.2.3.4, 203.0.113.7, 10.0.0.9"), Some(ingress)),
            "203.0.113.7",
            "the spoofed leftmost hop is not believed"
        );
        assert_eq!(trusted.client_key(&HeaderMap::new(), Some(ingress)), "10.0.0.5");
        let nobody = TrustedProxies::parse("none").unwrap();
        assert_eq!(nobody.client_key(&headers("203.0.113.7"), Some(ingress)), "10.0.0.5");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let trusted = TrustedProxies::default();
        let a: SocketAddr = "[2001:db8:1:2:aaaa::1]:443".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:bbbb::9]:443".parse().unwrap();
        let other: SocketAddr = "[2001:db8:1:3::1]:443".parse().unwrap();
        assert_eq!(trusted.client_key(&HeaderMap::new(), Some(a)), trusted.client_key(&HeaderMap::new(), Some(b)));
        assert_ne!(trusted.client_key(&HeaderMap::new(), Some(a)), trusted.client_key(&HeaderMap::new(), Some(other)));
        let mapped: SocketAddr = "[::ffff:203.0.113.7]:443".parse().unwrap();
        assert_eq!(trusted.client_key(&HeaderMap::new(), Some(mapped)), "203.0.113.7");
    }

    #[test]
    fn trusted_proxies_parse_cidrs_and_refuse_garbage() {
        let parsed = TrustedProxies::parse("10.1.0.0/16, 2001:db8::/32, 192.0.2.1").unwrap();
        assert!(parsed.trusts("10.1.200.3".parse().unwrap()));
        assert!(!parsed.trusts("10.2.0.1".parse().unwrap()));
        assert!(parsed.trusts("2001:db8:ff::1".parse().unwrap()));
        assert!(parsed.trusts("192.0.2.1".parse().unwrap()));
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("nonsense").is_err());
    }
}
