//! GCRA timing on tokio's paused clock: time moves only when the test says so.

use std::time::Duration;

use axum::http::StatusCode;
use tokio::time::advance;

use super::*;

fn limits(rps: u32, burst: u32, ips: u32, ib: u32) -> RateLimits {
    RateLimits::new(&LimitsConfig {
        requests_per_second: rps,
        requests_burst: burst,
        items_per_second: ips,
        items_burst: ib,
        ..LimitsConfig::default()
    })
}

fn key(name: &str) -> ClientKey {
    ClientKey::Key(Arc::from(name))
}

fn retry_after(e: &ApiError) -> u64 {
    match e {
        ApiError::RateLimited {
            retry_after_secs, ..
        } => *retry_after_secs,
        other => panic!("not a rate limit: {other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn burst_then_one_request_per_interval() {
    // 2 per second, burst 4: four at once, then one every 500 ms.
    let rl = limits(2, 4, 0, 0);
    let a = key("a");
    for i in 0..4 {
        let b = rl
            .check_request(&a)
            .expect("within the burst")
            .expect("budget");
        assert_eq!(b.remaining, 3 - i);
        assert_eq!(b.burst, 4);
    }
    let (e, b) = *rl.check_request(&a).expect_err("burst spent");
    assert_eq!(e.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&e), 1, "500 ms rounds up to 1 s");
    assert_eq!(b.remaining, 0);

    advance(Duration::from_millis(499)).await;
    assert!(rl.check_request(&a).is_err(), "1 ms early");
    advance(Duration::from_millis(1)).await;
    rl.check_request(&a).expect("one cell back after 500 ms");
    assert!(rl.check_request(&a).is_err(), "and only one");

    // Another client has its own bucket.
    rl.check_request(&key("b")).expect("b is untouched");
    rl.check_request(&ClientKey::Ip([10, 0, 0, 1].into()))
        .expect("an IP is a client too");

    // Two seconds idle refill the whole burst, and no more.
    advance(Duration::from_secs(10)).await;
    for _ in 0..4 {
        rl.check_request(&a).expect("refilled");
    }
    assert!(rl.check_request(&a).is_err());
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_the_wait_rounded_up() {
    // One per 4 seconds: Retry-After must say 4, then less as time passes.
    let rl = RateLimits {
        requests: Some({
            let clock = TokioClock::default();
            let quota = Quota::with_period(Duration::from_secs(4)).expect("period");
            Limiter {
                what: "requests",
                per_second: 1,
                burst: 1,
                limiter: Keyed::new(quota, DefaultKeyedStateStore::default(), clock.clone()),
                slots: Vec::new(),
                clock,
            }
        }),
        items: None,
    };
    let a = key("a");
    rl.check_request(&a).expect("first");
    let (e, _) = *rl.check_request(&a).expect_err("second");
    assert_eq!(retry_after(&e), 4);
    advance(Duration::from_millis(2500)).await;
    let (e, _) = *rl.check_request(&a).expect_err("still early");
    assert_eq!(retry_after(&e), 2, "1.5 s left rounds up to 2");
    advance(Duration::from_millis(1500)).await;
    rl.check_request(&a).expect("on time");
}

#[tokio::test(start_paused = true)]
async fn items_are_counted_per_input() {
    // 10 inputs per second, burst 10.
    let rl = limits(0, 0, 10, 0);
    let a = key("a");
    assert!(rl.check_request(&a).expect("no request limit").is_none());
    rl.check_items(&a, 8).expect("8 of 10");
    let e = rl.check_items(&a, 3).expect_err("only 2 left");
    assert_eq!(retry_after(&e), 1);
    rl.check_items(&a, 2).expect("exactly the rest");
    advance(Duration::from_millis(300)).await;
    rl.check_items(&a, 3).expect("3 back after 300 ms");
    // More than the burst can never pass: 413, not a 429 to retry forever.
    let e = rl.check_items(&a, 11).expect_err("over the burst");
    assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(start_paused = true)]
async fn off_by_default() {
    let rl = RateLimits::new(&LimitsConfig::default());
    assert!(rl.is_off());
    for _ in 0..10_000 {
        assert!(rl.check_request(&key("a")).expect("unlimited").is_none());
    }
    rl.check_items(&key("a"), 1_000_000).expect("unlimited");
}

#[test]
fn budget_headers_say_limit_remaining_and_reset() {
    for (reset_secs, want) in [(0, "0"), (9, "9"), (10, "10"), (3600, "3600")] {
        let mut h = HeaderMap::new();
        Budget {
            burst: 100,
            remaining: 42,
            reset_secs,
        }
        .write(&mut h);
        assert_eq!(h[&RATELIMIT_LIMIT], "100");
        assert_eq!(h[&RATELIMIT_REMAINING], "42");
        assert_eq!(h[&RATELIMIT_RESET], want);
    }
}

#[tokio::test(start_paused = true)]
async fn each_configured_key_has_its_own_bucket() {
    let rl = RateLimits::with_slots(
        &LimitsConfig {
            requests_per_second: 1,
            requests_burst: 2,
            ..LimitsConfig::default()
        },
        2,
    );
    for _ in 0..2 {
        rl.check_request(&ClientKey::Slot(0))
            .expect("key 0 within its burst");
    }
    assert!(
        rl.check_request(&ClientKey::Slot(0)).is_err(),
        "key 0 spent"
    );
    rl.check_request(&ClientKey::Slot(1))
        .expect("key 1 is untouched");
    // A slot beyond the store (not made by the key store) still gets a bucket.
    for _ in 0..2 {
        rl.check_request(&ClientKey::Slot(7))
            .expect("within the burst");
    }
    assert!(rl.check_request(&ClientKey::Slot(7)).is_err());
    advance(Duration::from_secs(1)).await;
    rl.check_request(&ClientKey::Slot(0))
        .expect("one cell back after a second");
}

#[test]
fn budget_headers_go_out_once_half_the_burst_is_used() {
    let budget = |remaining| Budget {
        burst: 10,
        remaining,
        reset_secs: 1,
    };
    assert!(!budget(9).worth_sending());
    assert!(!budget(6).worth_sending());
    assert!(budget(5).worth_sending());
    assert!(budget(0).worth_sending());
}

#[test]
fn ipv6_clients_are_keyed_by_their_64() {
    let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
    let one = ClientKey::ip(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd"));
    assert_eq!(one, ClientKey::ip(ip("2001:db8:1:2::1")));
    assert_eq!(one, ClientKey::Ip(ip("2001:db8:1:2::")));
    assert_ne!(one, ClientKey::ip(ip("2001:db8:1:3::1")), "next /64");
    // IPv4 is keyed by the address; IPv4-mapped IPv6 as the IPv4 address.
    assert_ne!(
        ClientKey::ip(ip("192.0.2.1")),
        ClientKey::ip(ip("192.0.2.2"))
    );
    assert_eq!(
        ClientKey::ip(ip("::ffff:192.0.2.1")),
        ClientKey::ip(ip("192.0.2.1"))
    );
}

#[tokio::test(start_paused = true)]
async fn addresses_in_one_64_share_a_bucket() {
    let rl = limits(1, 2, 0, 0);
    let ip = |s: &str| ClientKey::ip(s.parse().expect("ip"));
    rl.check_request(&ip("2001:db8::1")).expect("1 of 2");
    rl.check_request(&ip("2001:db8::2")).expect("2 of 2");
    assert!(
        rl.check_request(&ip("2001:db8::ffff:3")).is_err(),
        "same /64"
    );
    rl.check_request(&ip("2001:db8:0:1::1"))
        .expect("another /64 has its own bucket");
    let failures = FailureLimiter::new(1.0, 1);
    let net = |s: &str| client_net(s.parse().expect("ip"));
    failures.record(&net("2001:db8::1"));
    assert!(failures.admit(&net("2001:db8::99")).is_err(), "same /64");
    failures
        .admit(&net("2001:db8:0:1::1"))
        .expect("another /64");
}
