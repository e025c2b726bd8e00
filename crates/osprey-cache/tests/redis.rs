#![allow(clippy::expect_used)]
//! The Redis tier against a real Redis: the shared one at REDIS_URL for the plain
//! paths, and a private redis-server this test starts and kills for the failure paths.

use std::time::Duration;

use osprey_cache::testkit::{
    ManualClock, PrivateRedis, free_port, redis_config, shared_redis_url, unique_prefix,
};
use osprey_cache::{
    CacheConfig, CacheKey, DiskConfig, Entry, HealthStatus, KeySpace, MemoryConfig, RedisTier,
    Tier, TieredCache,
};

fn key(i: usize) -> CacheKey {
    KeySpace::new("model", "rev").key(&format!("sentence {i}"))
}

fn entry(i: usize) -> Entry {
    Entry::new(
        (0..384)
            .map(|j| ((i * 1000 + j) as f32).cos())
            .collect::<Vec<_>>(),
        i as u32,
    )
}

#[tokio::test]
async fn writes_behind_and_reads_back_with_mget() {
    let p = unique_prefix("rw");
    let tier = RedisTier::connect(&redis_config(&shared_redis_url(), &p), &shared_redis_url())
        .expect("connect");
    for i in 0..50 {
        tier.put(key(i), entry(i));
    }
    tier.flush().await;
    let keys: Vec<CacheKey> = (0..60).map(key).collect();
    let got = tier.get_many(&keys).await;
    for (i, g) in got.iter().enumerate().take(50) {
        assert_eq!(g.as_ref(), Some(&entry(i)), "entry {i}");
    }
    assert!(got[50..].iter().all(Option::is_none));
    assert_eq!(tier.count().await.expect("count"), 50);
    assert_eq!(tier.clear().await.expect("clear"), 50);
    assert!(tier.get_many(&keys[..3]).await.iter().all(Option::is_none));
    let s = tier.snapshot();
    assert_eq!(s.hits, 50);
    assert_eq!(s.writes, 50);
}

#[tokio::test]
async fn entries_expire_with_their_ttl() {
    let p = unique_prefix("ttl");
    let mut c = redis_config(&shared_redis_url(), &p);
    c.ttl_secs = 1;
    let tier = RedisTier::connect(&c, &shared_redis_url()).expect("connect");
    tier.put(key(1), entry(1));
    tier.flush().await;
    assert!(tier.get_many(&[key(1)]).await[0].is_some());
    // Redis keeps the TTL by its own clock: check the one the write set, then
    // play its passing by moving the expiry into the past, rather than sleeping.
    let mut conn = redis::Client::open(shared_redis_url().as_str())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let mut name = p.as_bytes().to_vec();
    name.extend_from_slice(key(1).as_bytes());
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut conn)
        .await
        .expect("PTTL");
    assert!(
        (1..=1000).contains(&ttl),
        "written with a 1 s TTL, PTTL {ttl}"
    );
    let _: () = redis::cmd("PEXPIREAT")
        .arg(&name)
        .arg(1)
        .query_async(&mut conn)
        .await
        .expect("PEXPIREAT");
    assert!(tier.get_many(&[key(1)]).await[0].is_none(), "expired");
}

#[tokio::test]
async fn corrupt_values_read_as_misses() {
    let p = unique_prefix("corrupt");
    let url = shared_redis_url();
    let tier = RedisTier::connect(&redis_config(&url, &p), &url).expect("connect");
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let mut name = p.as_bytes().to_vec();
    name.extend_from_slice(key(7).as_bytes());
    let _: () = redis::cmd("SET")
        .arg(&name)
        .arg(b"\x01\x00not an entry".as_slice())
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .expect("set");
    assert!(tier.get_many(&[key(7)]).await[0].is_none());
    assert_eq!(tier.snapshot().corrupt, 1);
    tier.clear().await.expect("clear");
}

#[tokio::test]
async fn two_caches_share_the_redis_tier() {
    let p = unique_prefix("shared");
    let url = shared_redis_url();
    let cfg = CacheConfig {
        share_across_keys: true,
        memory: MemoryConfig::default(),
        disk: DiskConfig::default(),
        redis: redis_config(&url, &p),
    };
    let a = TieredCache::open(&cfg).await.expect("a");
    let b = TieredCache::open(&cfg).await.expect("b");
    a.put_many(&[(key(1), entry(1))]);
    a.flush().await;
    let got = b.get_many(&[key(1)]).await;
    assert_eq!(got[0].as_ref().map(|f| f.tier), Some(Tier::Redis));
    assert_eq!(got[0].as_ref().map(|f| &f.entry), Some(&entry(1)));
    // The hit was promoted: the next lookup is a memory hit.
    let again = b.get_many(&[key(1)]).await;
    assert_eq!(again[0].as_ref().map(|f| f.tier), Some(Tier::Memory));
    b.clear().await.expect("clear");
}

#[tokio::test]
async fn a_dead_redis_opens_the_circuit_and_a_live_one_closes_it() {
    let port = free_port();
    let mut redis = PrivateRedis::start(port);
    let url = redis.url();
    let tier = RedisTier::connect(&redis_config(&url, "osprey:"), &url).expect("connect");
    tier.put(key(1), entry(1));
    tier.flush().await;
    assert!(tier.get_many(&[key(1)]).await[0].is_some());

    redis.kill();
    // Lookups fail soft (misses), and after the threshold the tier is skipped.
    for _ in 0..3 {
        assert!(tier.get_many(&[key(1)]).await[0].is_none());
    }
    let h = tier.health();
    assert_eq!(h.status, HealthStatus::Degraded, "{h:?}");
    assert!(tier.snapshot().errors >= 2);
    // Writes while open are dropped and counted, never queued without bound.
    tier.put(key(2), entry(2));
    assert!(tier.snapshot().dropped_writes >= 1);

    let _redis = PrivateRedis::start(port);
    let mut healthy = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if tier.health().status == HealthStatus::Ok {
            healthy = true;
            break;
        }
    }
    assert!(healthy, "the probe closes the circuit once redis answers");
    tier.put(key(3), entry(3));
    tier.flush().await;
    assert_eq!(tier.get_many(&[key(3)]).await[0].as_ref(), Some(&entry(3)));
}

#[tokio::test]
async fn starts_while_redis_is_down() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let cfg = CacheConfig {
        share_across_keys: true,
        memory: MemoryConfig::default(),
        disk: DiskConfig::default(),
        redis: redis_config(&url, "osprey:"),
    };
    let cache = TieredCache::open(&cfg).await.expect("opens without redis");
    cache.put_many(&[(key(1), entry(1))]);
    let got = cache.get_many(&[key(1), key(2)]).await;
    assert_eq!(got[0].as_ref().map(|f| f.tier), Some(Tier::Memory));
    assert!(got[1].is_none());
}

#[tokio::test]
async fn a_slow_redis_costs_at_most_the_timeout() {
    let port = free_port();
    let redis = PrivateRedis::start(port);
    let url = redis.url();
    let tier = RedisTier::connect(&redis_config(&url, "osprey:"), &url).expect("connect");
    tier.put(key(1), entry(1));
    tier.flush().await;
    // Block the Redis server for two seconds: our calls must give up after 200 ms.
    let client = redis::Client::open(url.as_str()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    let sleeper = tokio::spawn(async move {
        let r: redis::RedisResult<()> = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(2)
            .query_async(&mut conn)
            .await;
        assert!(r.is_ok(), "DEBUG SLEEP: {r:?}");
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let got = tier.get_many(&[key(1)]).await;
    let waited = started.elapsed();
    assert!(got[0].is_none(), "a timed-out lookup is a miss");
    // Generous bound: the timeout is 200 ms; the point is not waiting for the 2 s sleep.
    assert!(waited < Duration::from_millis(1500), "waited {waited:?}");
    assert!(tier.snapshot().errors >= 1);
    let _ = sleeper.await;
}

#[tokio::test]
async fn copies_from_redis_expire_with_the_entry_in_redis() {
    let p = unique_prefix("copy-ttl");
    let url = shared_redis_url();
    // Redis keeps this entry 2 s more; the memory tier would keep a copy an hour.
    let mut short = redis_config(&url, &p);
    short.ttl_secs = 2;
    let writer = RedisTier::connect(&short, &url).expect("connect");
    writer.put(key(1), entry(1));
    writer.flush().await;
    let clock = ManualClock::new();
    let cfg = CacheConfig {
        memory: MemoryConfig::default(),
        redis: redis_config(&url, &p),
        ..CacheConfig::disabled()
    };
    let cache = TieredCache::open_with_clock(&cfg, clock.shared())
        .await
        .expect("open");
    let tier = |got: Vec<Option<osprey_cache::Found>>| got[0].as_ref().map(|f| f.tier);
    assert_eq!(tier(cache.get_many(&[key(1)]).await), Some(Tier::Redis));
    assert_eq!(tier(cache.get_many(&[key(1)]).await), Some(Tier::Memory));
    // Past Redis's TTL on the cache's clock, the memory copy is gone (Redis, on
    // its own clock, still answers).
    clock.advance(Duration::from_millis(2_100));
    assert_eq!(tier(cache.get_many(&[key(1)]).await), Some(Tier::Redis));
    writer.clear().await.expect("clean up");
}
