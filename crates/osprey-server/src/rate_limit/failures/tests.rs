//! The failure buckets on tokio's paused clock.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tokio::time::advance;

use super::*;

fn ip(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n))
}

fn retry_after(e: ApiError) -> u64 {
    match e {
        ApiError::RateLimited {
            retry_after_secs, ..
        } => retry_after_secs,
        other => panic!("not a rate-limit refusal: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_burst_of_failures_then_one_a_period() {
    let l = FailureLimiter::new(0.5, 3);
    let a = ip(1);
    for _ in 0..3 {
        l.admit(&a).expect("within the burst");
        l.record(&a);
    }
    let wait = retry_after(l.admit(&a).expect_err("burst spent"));
    assert_eq!(wait, 2, "one failure forgiven every 2 s");
    // Others are not affected; checking takes nothing.
    for _ in 0..100 {
        l.admit(&ip(2)).expect("another address");
        l.admit(&a).expect_err("still refused");
    }
    advance(Duration::from_millis(1999)).await;
    l.admit(&a).expect_err("not yet");
    advance(Duration::from_millis(1)).await;
    l.admit(&a).expect("one failure forgiven");
    l.record(&a);
    l.admit(&a).expect_err("and spent again");
    // Failures that raced past the check do not lengthen the wait.
    for _ in 0..50 {
        l.record(&a);
    }
    advance(Duration::from_secs(2)).await;
    l.admit(&a).expect("one period later, as before");
    // Once the bucket is full again the address is forgotten.
    advance(Duration::from_secs(6)).await;
    l.admit(&a).expect("full again");
    assert_eq!(l.tracked(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_address_spray_is_bounded_and_throttled_as_a_whole() {
    let l = FailureLimiter::new(1.0, 2);
    let n = (MAX_TRACKED * 2) as u32;
    for i in 0..n {
        l.record(&ip(i));
    }
    assert!(l.tracked() <= MAX_TRACKED, "{} tracked", l.tracked());
    // The addresses the table could not hold shared one bucket, long spent.
    let refused = (n..n + 1000).filter(|i| l.admit(&ip(*i)).is_err()).count();
    assert!(refused > 900, "{refused} of 1000 fresh addresses refused");
    // Once the buckets refill, the table makes room again.
    advance(Duration::from_secs(3)).await;
    l.record(&ip(n + 5000));
    l.admit(&ip(n + 6000)).expect("overflow bucket refilled");
    assert!(l.tracked() <= MAX_TRACKED);
}
