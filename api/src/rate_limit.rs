//! Per-client rate limit for the public endpoints (a GCRA per client IP, from `governor`): the
//! caller's queries (mobile-api) and, with their own budget, the coverage routes.
//!
//! The client is the TCP peer; behind reverse proxies set `trust_forwarded_for` and
//! `trusted_proxy_hops` (how many proxies stand in front of aednet), and the right-most address
//! in `X-Forwarded-For` that no trusted proxy wrote is used instead: everything left of it was
//! written by the client and can be forged. IPv6 clients are keyed by their /64 (one subscriber
//! line or host gets a whole /64 and can pick any address in it).

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
    /// With `trust_forwarded_for`: how many reverse proxies (each appending to
    /// `X-Forwarded-For`) stand between clients and aednet. 1 = one proxy: the last entry.
    pub trusted_proxy_hops: u32,
}

impl Default for PublicLimits {
    fn default() -> Self {
        Self {
            per_minute: 120,
            burst: 30,
            trust_forwarded_for: false,
            trusted_proxy_hops: 1,
        }
    }
}

#[derive(Debug)]
pub struct RateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// 0 when `X-Forwarded-For` is not trusted.
    trusted_hops: usize,
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
            trusted_hops: if limits.trust_forwarded_for {
                limits.trusted_proxy_hops.max(1) as usize
            } else {
                0
            },
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
        l.check_key(&client_key(client)).map_err(|not_until| {
            not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs_f64()
                .ceil() as u64
        })
    }

    /// The client's address: the TCP peer, or behind trusted proxies the right-most address in
    /// `X-Forwarded-For` that they did not write themselves.
    pub fn client(&self, req: &Request) -> Option<IpAddr> {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(a)| a.ip());
        if self.trusted_hops == 0 {
            return peer;
        }
        let forwarded: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        forwarded_client(&forwarded, self.trusted_hops).or(peer)
    }
}

/// With `hops` trusted proxies, each appending the address it received the request from: the
/// last `hops - 1` entries are proxies' addresses and the one before them is the client. Fewer
/// entries than that means every entry was written by a trusted proxy: the first is the client.
/// `None` (use the TCP peer) without a header or when the chosen entry is not an address.
fn forwarded_client(entries: &[&str], hops: usize) -> Option<IpAddr> {
    let n = entries.len();
    if n == 0 {
        return None;
    }
    let entry = entries[n.saturating_sub(hops)].trim();
    parse_forwarded_addr(entry)
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_forwarded_addr(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// The rate-limit key: an IPv4 address as it is (IPv4-mapped IPv6 too), an IPv6 address
/// reduced to its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(bits))
            }
        },
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
            ..PublicLimits::default()
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

    #[test]
    fn ipv6_clients_share_a_limit_per_64_and_mapped_v4_is_v4() {
        let l = RateLimiter::new(&PublicLimits {
            per_minute: 60,
            burst: 2,
            ..PublicLimits::default()
        });
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:eeee:dddd:cccc".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert!(l.check(a).is_ok());
        assert!(l.check(b).is_ok());
        assert!(l.check(a).is_err(), "same /64: one budget");
        assert!(l.check(b).is_err(), "same /64: one budget");
        assert!(l.check(other).is_ok(), "another /64 is another client");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(client_key(v4), v4);
    }

    fn request(peer: &str, xff: &[&str]) -> Request {
        let mut b = axum::http::Request::builder().uri("/");
        for v in xff {
            b = b.header("x-forwarded-for", *v);
        }
        let mut req = b.body(axum::body::Body::empty()).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req
    }

    #[test]
    fn forwarded_for_takes_the_right_most_untrusted_address() {
        let peer = "10.0.0.1:5000";
        let lim = |trust: bool, hops: u32| {
            RateLimiter::new(&PublicLimits {
                trust_forwarded_for: trust,
                trusted_proxy_hops: hops,
                ..PublicLimits::default()
            })
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        // Not trusted: the peer, whatever the header says.
        let r = request(peer, &["203.0.113.9"]);
        assert_eq!(lim(false, 1).client(&r), ip("10.0.0.1"));
        // One proxy: the client forged "1.1.1.1", the proxy appended what it saw.
        let r = request(peer, &["1.1.1.1, 203.0.113.9"]);
        assert_eq!(lim(true, 1).client(&r), ip("203.0.113.9"));
        // Two proxies (CDN, then ingress): the ingress appended the CDN's address.
        let r = request(peer, &["1.1.1.1, 203.0.113.9, 198.51.100.2"]);
        assert_eq!(lim(true, 2).client(&r), ip("203.0.113.9"));
        assert_eq!(lim(true, 1).client(&r), ip("198.51.100.2"));
        // The header split over several lines counts as one list.
        let r = request(peer, &["1.1.1.1", "203.0.113.9, 198.51.100.2"]);
        assert_eq!(lim(true, 2).client(&r), ip("203.0.113.9"));
        // Fewer entries than hops: every entry came from a trusted proxy; the first is the client.
        let r = request(peer, &["203.0.113.9"]);
        assert_eq!(lim(true, 3).client(&r), ip("203.0.113.9"));
        // Ports and bracketed IPv6 are understood; garbage falls back to the peer.
        let r = request(peer, &["[2001:db8::5]:4711"]);
        assert_eq!(lim(true, 1).client(&r), ip("2001:db8::5"));
        let r = request(peer, &["203.0.113.9:80"]);
        assert_eq!(lim(true, 1).client(&r), ip("203.0.113.9"));
        let r = request(peer, &["1.1.1.1, not-an-address"]);
        assert_eq!(lim(true, 1).client(&r), ip("10.0.0.1"));
        let r = request(peer, &[]);
        assert_eq!(lim(true, 1).client(&r), ip("10.0.0.1"));
    }
}
