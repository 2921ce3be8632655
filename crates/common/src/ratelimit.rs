//! A keyed token-bucket rate limiter, per process (each replica limits on its own).
//!
//! Used for sign-in: a client gets `burst` attempts at once and `burst` more every
//! `period`; past that the request is refused with 429 and `Retry-After`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

/// Entries kept before idle, full buckets are pruned.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Limits how often each key may act. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    buckets: Arc<Mutex<HashMap<String, Bucket>>>,
    burst: f64,
    per_second: f64,
}

impl RateLimiter {
    /// `burst` actions at once, refilled at `burst` per `period`.
    pub fn new(burst: u32, period: Duration) -> Self {
        let burst = f64::from(burst.max(1));
        Self { buckets: Arc::default(), burst, per_second: burst / period.as_secs_f64().max(0.001) }
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        // Never held across an await: the critical section is a few arithmetic steps.
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > PRUNE_ABOVE {
            let (burst, per_second) = (self.burst, self.per_second);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < burst);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: self.burst, updated: now });
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.updated).as_secs_f64() * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.per_second))
        }
    }
}

/// The client a request comes from: the first `X-Forwarded-For` hop (set by the ingress,
/// the only way into the cluster), else the peer address.
pub fn client_key(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .or_else(|| peer.map(|p| p.ip().to_string()))
        .unwrap_or_else(|| "unknown".to_owned())
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
    fn the_forwarded_client_wins_over_the_peer() {
        let mut headers = HeaderMap::new();
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert_eq!(client_key(&headers, Some(peer)), "10.0.0.1");
        headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.2".parse().unwrap());
        assert_eq!(client_key(&headers, Some(peer)), "203.0.113.7");
    }
}
