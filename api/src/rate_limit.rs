//! Per-client rate limit for the public endpoints (a GCRA per client IP, from `governor`): the
//! caller's queries (mobile-api) and, with their own budget, the coverage routes.
//!
//! The client is the TCP peer; behind a reverse proxy set `trust_forwarded_for`, and the last
//! address in `X-Forwarded-For` (the one the proxy saw) is used instead.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::ApiError;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublicLimits {
    /// Sustained requests per minute per client; 0 turns the limit off (load tests).
    pub per_minute: u32,
    /// Requests a client may make at once before the sustained rate applies.
    pub burst: u32,
    pub trust_forwarded_for: bool,
}

impl Default for PublicLimits {
    fn default() -> Self {
        Self {
            per_minute: 120,
            burst: 30,
            trust_forwarded_for: false,
        }
    }
}

#[derive(Debug)]
pub struct RateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trust_forwarded_for: bool,
    checks: AtomicU64,
}

impl RateLimiter {
    pub fn new(limits: &PublicLimits) -> Self {
        let limiter = NonZeroU32::new(limits.per_minute).map(|rate| {
            let burst = NonZeroU32::new(limits.burst).unwrap_or(rate);
            governor::RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        Self {
            limiter,
            trust_forwarded_for: limits.trust_forwarded_for,
            checks: AtomicU64::new(0),
        }
    }

    /// `Err(seconds to wait)` when `client` is over its limit.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        let Some(l) = &self.limiter else {
            return Ok(());
        };
        // Forget idle clients now and then so the key map stays small.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 65_536 == 65_535 {
            l.retain_recent();
            l.shrink_to_fit();
        }
        l.check_key(&client).map_err(|not_until| {
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs_f64()
                .ceil() as u64
        })
    }

    fn client(&self, req: &Request) -> Option<IpAddr> {
        if self.trust_forwarded_for {
            let forwarded = req
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|ip| ip.trim().parse().ok());
            if forwarded.is_some() {
                return forwarded;
            }
        }
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip())
    }
}

pub async fn enforce(State(l): State<Arc<RateLimiter>>, req: Request, next: Next) -> Response {
    // Without a peer address (in-process tests) there is nobody to limit.
    if let Some(ip) = l.client(&req) {
        if let Err(wait) = l.check(ip) {
            return ApiError::RateLimited(wait).into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refused_per_client_and_off_when_zero() {
        let l = RateLimiter::new(&PublicLimits {
            per_minute: 60,
            burst: 3,
            trust_forwarded_for: false,
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(a).is_ok());
        }
        let wait = l.check(a).unwrap_err();
        assert!((1..=2).contains(&wait), "{wait}");
        assert!(l.check(b).is_ok(), "another client is not affected");
        let off = RateLimiter::new(&PublicLimits {
            per_minute: 0,
            ..PublicLimits::default()
        });
        assert!((0..10_000).all(|_| off.check(a).is_ok()));
    }
}
