//! How many sockets may be open, and how fast a client may try: connection caps in
//! total and per organization ([`Caps`], refused with 503 or closed with 4503), the
//! limit on upgrade attempts per client IP ([`IpLimit`], 429), and [`RateLimit`], the
//! rate-with-a-burst setting that this limit and the per-session frame rate share.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::server::error::Refusal;

/// Open sync sockets in total.
pub const DEFAULT_MAX_CONNECTIONS: usize = 20_000;
/// Open sync sockets per organization.
pub const DEFAULT_MAX_CONNECTIONS_PER_ORG: usize = 10_000;
/// Upgrade attempts per client IP before the rate applies (when the limit is on).
pub const DEFAULT_IP_BURST: u32 = 20;
/// Client addresses the per-IP limiter remembers before it forgets idle ones.
const IP_TABLE_PRUNE: usize = 10_000;
/// How often (in checks) the per-IP limiter looks whether to forget idle addresses.
const IP_PRUNE_EVERY: u64 = 1024;

/// How a connection over a cap is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CapResponse {
    /// Refuse the upgrade with HTTP 503 and a JSON body.
    #[default]
    Http,
    /// Accept the upgrade, then close with 4503 (browsers cannot read an HTTP status).
    Close,
}

/// A rate with a burst: `per_second` cells replenish, `burst` may be spent at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl RateLimit {
    /// `None` when the rate is 0 (off). A zero burst means "the rate".
    pub fn quota(self) -> Option<Quota> {
        let rate = NonZeroU32::new(self.per_second)?;
        Some(Quota::per_second(rate).allow_burst(NonZeroU32::new(self.burst).unwrap_or(rate)))
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_org: HashMap<String, usize>,
}

/// Open sync sockets, in total and per organization, against their caps.
pub struct Caps {
    max_total: usize,
    max_per_org: usize,
    counts: Mutex<Counts>,
}

/// One admitted socket; dropping it frees its place.
pub struct Permit {
    caps: Arc<Caps>,
    org: String,
}

impl Caps {
    pub fn new(max_total: usize, max_per_org: usize) -> Caps {
        Caps {
            max_total,
            max_per_org,
            counts: Mutex::default(),
        }
    }

    pub fn acquire(self: &Arc<Self>, org: &str) -> Result<Permit, Refusal> {
        let mut counts = self.counts.lock().expect("caps lock");
        let unavailable = |reason, message: String| {
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SERVICE_UNAVAILABLE",
                reason,
                message,
            )
        };
        if self.max_total > 0 && counts.total >= self.max_total {
            return Err(unavailable(
                "cap_total",
                format!(
                    "connection cap reached: {} open connections in total",
                    self.max_total
                ),
            ));
        }
        let open = counts.per_org.get(org).copied().unwrap_or(0);
        if self.max_per_org > 0 && open >= self.max_per_org {
            return Err(unavailable(
                "cap_org",
                format!(
                    "connection cap reached: {} open connections for this organization",
                    self.max_per_org
                ),
            ));
        }
        counts.total += 1;
        *counts.per_org.entry(org.to_string()).or_default() += 1;
        Ok(Permit {
            caps: self.clone(),
            org: org.to_string(),
        })
    }

    /// Open sockets whose organization `still_allowed` rejects.
    pub fn open_outside(&self, still_allowed: impl Fn(&str) -> bool) -> usize {
        let counts = self.counts.lock().expect("caps lock");
        counts
            .per_org
            .iter()
            .filter(|(org, _)| !still_allowed(org))
            .map(|(_, n)| n)
            .sum()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.caps.counts.lock().expect("caps lock");
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_org.get_mut(&self.org) {
            *n -= 1;
            if *n == 0 {
                counts.per_org.remove(&self.org);
            }
        }
    }
}

/// The limit on upgrade attempts per client IP.
pub struct IpLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    checks: AtomicU64,
}

impl IpLimit {
    /// `None` when the limit is off.
    pub fn new(limit: Option<RateLimit>) -> Option<IpLimit> {
        let quota = limit.and_then(RateLimit::quota)?;
        Some(IpLimit {
            limiter: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        })
    }

    /// Whether an upgrade attempt from `ip` is within the limit.
    pub fn attempt(&self, ip: IpAddr) -> bool {
        // Forget addresses whose budget is full again, now and then, so the table
        // stays bounded by the addresses active recently.
        if self
            .checks
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(IP_PRUNE_EVERY)
            && self.limiter.len() > IP_TABLE_PRUNE
        {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&ip).is_ok()
    }

    /// The refusal of an attempt over the limit.
    pub fn refusal(ip: IpAddr) -> Refusal {
        Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "ip_upgrade_limit",
            format!("too many connection attempts from {ip}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_and_release() {
        let caps = Arc::new(Caps::new(3, 2));
        let a1 = caps.acquire("a").unwrap();
        let _a2 = caps.acquire("a").unwrap();
        assert_eq!(caps.acquire("a").err().unwrap().reason, "cap_org");
        let _b = caps.acquire("b").unwrap();
        assert_eq!(caps.acquire("c").err().unwrap().reason, "cap_total");
        drop(a1);
        assert!(caps.acquire("c").is_ok());
        assert_eq!(caps.open_outside(|org| org == "a"), 1);
    }
}
