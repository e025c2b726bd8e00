//! Per-client rate limits with GCRA (governor): requests per second and inputs
//! per second, each with a burst. Clients are API key names, or IP addresses when
//! authentication is off. Failed authentications have limits of their own per
//! client address ([`FailureLimiter`]).
//!
//! Time comes from tokio's clock so tests can pause and advance it.

use std::cell::Cell;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use governor::clock::Clock;
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::ApiError;
use crate::limits::LimitsConfig;

mod failures;
pub use failures::{FailureLimiter, MAX_TRACKED};

/// Who a limit is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A configured API key, by its place in the key store: these are known at
    /// start-up, so each has a bucket of its own that needs no lookup.
    Slot(usize),
    /// A client known only by name (a JWT subject).
    Key(Arc<str>),
    /// A client address, as [`client_net`] keys it.
    Ip(IpAddr),
}

impl ClientKey {
    pub fn ip(addr: IpAddr) -> Self {
        Self::Ip(client_net(addr))
    }
}

/// What a client address is counted as: IPv6 by its /64, the block one subscriber
/// or host is usually given, so a client cannot take a fresh bucket per address;
/// an IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn client_net(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64))),
        v4 => v4,
    }
}

/// Tokio's monotonic clock as time since the limiter was made.
#[derive(Debug, Clone)]
pub struct TokioClock {
    origin: tokio::time::Instant,
}

impl Default for TokioClock {
    fn default() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    type Instant = Duration;
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

type Keyed = RateLimiter<
    ClientKey,
    DefaultKeyedStateStore<ClientKey>,
    TokioClock,
    StateInformationMiddleware,
>;
type Direct = RateLimiter<NotKeyed, InMemoryState, TokioClock, StateInformationMiddleware>;

/// One quota (requests or inputs) for every client.
struct Limiter {
    what: &'static str,
    per_second: u32,
    burst: u32,
    limiter: Keyed,
    /// One bucket per configured API key, indexed by [`ClientKey::Slot`].
    slots: Vec<Direct>,
    clock: TokioClock,
}

impl Limiter {
    fn new(what: &'static str, per_second: u32, burst: u32, slots: usize) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        let clock = TokioClock::default();
        let quota = Quota::per_second(rate).allow_burst(burst);
        let limiter = Keyed::new(quota, DefaultKeyedStateStore::default(), clock.clone());
        let slots = (0..slots)
            .map(|_| Direct::new(quota, InMemoryState::default(), clock.clone()))
            .collect();
        Some(Self {
            what,
            per_second,
            burst: burst.get(),
            limiter,
            slots,
            clock,
        })
    }

    /// Takes `n` cells from the client's bucket, or says how long to wait.
    /// Returns the cells left in the bucket.
    fn take(&self, client: &ClientKey, n: u32) -> Result<u32, ApiError> {
        let Some(n) = NonZeroU32::new(n) else {
            return Ok(self.burst);
        };
        let checked = match client {
            ClientKey::Slot(i) => match self.slots.get(*i) {
                Some(bucket) => bucket.check_n(n),
                None => self.limiter.check_key_n(client, n),
            },
            _ => self.limiter.check_key_n(client, n),
        };
        match checked {
            Ok(Ok(snapshot)) => Ok(remaining(&snapshot)),
            Ok(Err(not_until)) => Err(self.refusal(not_until.wait_time_from(self.clock.now()))),
            Err(_) => Err(ApiError::TooLarge(format!(
                "{n} {} in one request, more than this client's burst of {}",
                self.what, self.burst
            ))),
        }
    }

    fn refusal(&self, wait: Duration) -> ApiError {
        // Whole seconds, rounded up: a client that waits that long gets through.
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        ApiError::RateLimited {
            message: format!(
                "rate limit of {} {} per second (burst {}) reached; retry in {secs} s",
                self.per_second, self.what, self.burst
            ),
            retry_after_secs: secs.max(1),
        }
    }
}

fn remaining(s: &StateSnapshot) -> u32 {
    s.remaining_burst_capacity()
}

/// The configured limits; each is off when its rate is 0.
pub struct RateLimits {
    requests: Option<Limiter>,
    items: Option<Limiter>,
}

/// What the `RateLimit-*` response headers report.
#[derive(Debug, Clone)]
pub struct Budget {
    /// The bucket's size: `RateLimit-Limit`, and what tells a client near its limit
    /// from one far from it. A number, not a shared header value: cloning one per
    /// request would be a reference count bumped from every core.
    burst: u32,
    remaining: u32,
    reset_secs: u64,
}

pub static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

impl Budget {
    /// Whether a successful answer carries the headers: once the client has used
    /// half its burst, when pacing itself starts to matter. Refusals always carry
    /// them. Far from the limit they would add about 90 bytes to every answer for
    /// the client to parse, for nothing it needs.
    pub fn worth_sending(&self) -> bool {
        self.remaining <= self.burst / 2
    }

    /// Written on the answers of clients near their limit, so kept cheap: small
    /// reset values are static strings.
    pub fn write(self, h: &mut HeaderMap) {
        h.reserve(3);
        h.insert(RATELIMIT_LIMIT.clone(), HeaderValue::from(self.burst));
        h.insert(
            RATELIMIT_REMAINING.clone(),
            HeaderValue::from(self.remaining),
        );
        h.insert(RATELIMIT_RESET.clone(), seconds_value(self.reset_secs));
    }
}

/// Seconds as a header value; the usual 0 to 9 without allocating.
fn seconds_value(secs: u64) -> HeaderValue {
    const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    match DIGITS.get(secs as usize) {
        Some(d) => HeaderValue::from_static(d),
        None => HeaderValue::from(secs),
    }
}

impl RateLimits {
    pub fn new(config: &LimitsConfig) -> Self {
        Self::with_slots(config, 0)
    }

    /// Limits with a bucket of its own for each of `slots` configured API keys.
    pub fn with_slots(config: &LimitsConfig, slots: usize) -> Self {
        Self {
            requests: Limiter::new(
                "requests",
                config.requests_per_second,
                config.requests_burst,
                slots,
            ),
            items: Limiter::new("inputs", config.items_per_second, config.items_burst, slots),
        }
    }

    pub fn is_off(&self) -> bool {
        self.requests.is_none() && self.items.is_none()
    }

    /// Counts one request against the client. On refusal the error carries
    /// `Retry-After`; the budget is for the `RateLimit-*` headers.
    /// The refusal is boxed: it is the rare path, and keeps the result small.
    pub fn check_request(
        &self,
        client: &ClientKey,
    ) -> Result<Option<Budget>, Box<(ApiError, Budget)>> {
        self.forget_idle_clients();
        let Some(l) = &self.requests else {
            return Ok(None);
        };
        match l.take(client, 1) {
            Ok(remaining) => {
                // Time until the bucket is full again.
                let reset =
                    u64::from(l.burst - remaining.min(l.burst)).div_ceil(u64::from(l.per_second));
                Ok(Some(Budget {
                    burst: l.burst,
                    remaining,
                    reset_secs: reset,
                }))
            }
            Err(e) => {
                let reset_secs = match &e {
                    ApiError::RateLimited {
                        retry_after_secs, ..
                    } => *retry_after_secs,
                    _ => 1,
                };
                Err(Box::new((
                    e,
                    Budget {
                        burst: l.burst,
                        remaining: 0,
                        reset_secs,
                    },
                )))
            }
        }
    }

    /// Counts `n` inputs against the client.
    pub fn check_items(&self, client: &ClientKey, n: usize) -> Result<(), ApiError> {
        match &self.items {
            None => Ok(()),
            Some(l) => l
                .take(client, u32::try_from(n).unwrap_or(u32::MAX))
                .map(|_| ()),
        }
    }

    /// Drops the state of clients whose buckets are full again, now and then, so a
    /// stream of new IP addresses cannot grow the tables without bound.
    fn forget_idle_clients(&self) {
        // Counted per thread: one shared counter written by every request would
        // bounce its cache line between the cores.
        thread_local! {
            static CHECKS: Cell<u32> = const { Cell::new(0) };
        }
        let n = CHECKS.with(|c| {
            let n = c.get().wrapping_add(1);
            c.set(n);
            n
        });
        if n.is_multiple_of(4096) {
            for l in [&self.requests, &self.items].into_iter().flatten() {
                l.limiter.retain_recent();
                l.limiter.shrink_to_fit();
            }
        }
    }
}

#[cfg(test)]
mod tests;
