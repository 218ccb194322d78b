//! Per-client token buckets for the task metadata and credentials endpoints
//! (`ECS_TASK_METADATA_RPS_LIMIT`: steady rate per second, burst), keyed by client IP.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Allows `steady` requests a second per client, with bursts up to `burst`.
pub struct RateLimiter {
    steady: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    pub fn new(steady: u32, burst: u32) -> Self {
        RateLimiter {
            steady: f64::from(steady),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Whether a request from `client` may proceed now.
    pub fn allow(&self, client: IpAddr) -> bool {
        self.allow_at(client, Instant::now())
    }

    fn allow_at(&self, client: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            // Bounded memory: forget clients that are full again.
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * self.steady < self.burst
            });
        }
        let b = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens =
            (b.tokens + now.duration_since(b.at).as_secs_f64() * self.steady).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_client_gets_its_burst_then_the_steady_rate_and_others_are_unaffected() {
        let limiter = RateLimiter::new(40, 60);
        let (a, b): (IpAddr, IpAddr) =
            ("172.17.0.2".parse().unwrap(), "172.17.0.3".parse().unwrap());
        let t0 = Instant::now();
        let allowed = (0..100).filter(|_| limiter.allow_at(a, t0)).count();
        assert_eq!(allowed, 60, "the burst");
        assert!(limiter.allow_at(b, t0), "another client has its own bucket");
        let t1 = t0 + Duration::from_millis(500);
        let later = (0..100).filter(|_| limiter.allow_at(a, t1)).count();
        assert_eq!(later, 20, "40/s for half a second");
    }
}
