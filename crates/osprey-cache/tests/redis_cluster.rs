#![allow(clippy::expect_used)]
//! The Redis tier against a real three-master Redis Cluster this test starts: keys
//! spread over every master and read back without CROSSSLOT errors, clearing that
//! reaches every master, more seeds than one, and a master dying and coming back.

use std::time::Duration;

use osprey_cache::testkit::{PrivateCluster, cluster_config, free_port, unique_prefix};
use osprey_cache::{CacheKey, Entry, HealthStatus, KeySpace, RedisTier, RedisUrl};

fn key(i: usize) -> CacheKey {
    KeySpace::new("model", "rev").key(&format!("sentence {i}"))
}

fn entry(i: usize) -> Entry {
    Entry::new(
        (0..64)
            .map(|j| ((i * 1000 + j) as f32).sin())
            .collect::<Vec<_>>(),
        i as u32,
    )
}

/// How many keys each node holds (`DBSIZE`, asked of that node alone).
async fn keys_per_node(cluster: &PrivateCluster) -> Vec<u64> {
    let mut out = Vec::new();
    for port in cluster.ports() {
        let mut conn = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connection");
        let n: u64 = redis::cmd("DBSIZE")
            .query_async(&mut conn)
            .await
            .expect("DBSIZE");
        out.push(n);
    }
    out
}

async fn wait_for(tier: &RedisTier, status: HealthStatus) -> bool {
    for _ in 0..100 {
        if tier.health().status == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn keys_spread_over_every_master_and_clear_reaches_them_all() {
    let cluster = PrivateCluster::start(3);
    let tier = RedisTier::connect(
        &cluster_config(&cluster, &unique_prefix("cluster-rw")),
        &cluster.urls()[0],
    )
    .expect("connect");
    for i in 0..300 {
        tier.put(key(i), entry(i));
    }
    tier.flush().await;
    // One lookup of keys in hundreds of slots: no CROSSSLOT, every value back.
    let keys: Vec<CacheKey> = (0..320).map(key).collect();
    let got = tier.get_many(&keys).await;
    for (i, g) in got.iter().enumerate().take(300) {
        assert_eq!(g.as_ref(), Some(&entry(i)), "entry {i}");
    }
    assert!(got[300..].iter().all(Option::is_none));
    let s = tier.snapshot();
    assert_eq!((s.writes, s.hits, s.errors), (300, 300, 0), "{s:?}");

    let spread = keys_per_node(&cluster).await;
    assert!(spread.iter().all(|&n| n > 50), "spread {spread:?}");
    assert_eq!(spread.iter().sum::<u64>(), 300);
    assert_eq!(tier.count().await.expect("count"), 300);
    assert_eq!(tier.clear().await.expect("clear"), 300);
    assert_eq!(keys_per_node(&cluster).await, [0, 0, 0]);
    assert!(tier.get_many(&keys[..5]).await.iter().all(Option::is_none));
}

#[tokio::test]
async fn a_later_seed_answers_when_the_first_is_down() {
    let cluster = PrivateCluster::start(3);
    let dead = format!("redis://127.0.0.1:{}", free_port());
    let mut config = cluster_config(&cluster, &unique_prefix("cluster-seeds"));
    config.url = Some(dead.clone());
    config.urls = cluster.urls()[1..].iter().map(RedisUrl::new).collect();
    // Discovery starts in the background; give it more than one call's timeout.
    config.timeout_ms = 1000;
    let tier = RedisTier::connect(&config, &dead).expect("connect");
    tier.put(key(1), entry(1));
    tier.flush().await;
    assert_eq!(tier.get_many(&[key(1)]).await[0].as_ref(), Some(&entry(1)));
    tier.clear().await.expect("clear");
}

#[tokio::test]
async fn a_dead_master_opens_the_circuit_and_its_return_closes_it() {
    let mut cluster = PrivateCluster::start(3);
    let tier = RedisTier::connect(
        &cluster_config(&cluster, &unique_prefix("cluster-breaker")),
        &cluster.urls()[0],
    )
    .expect("connect");
    let keys: Vec<CacheKey> = (0..30).map(key).collect();
    for (i, k) in keys.iter().enumerate() {
        tier.put(*k, entry(i));
    }
    tier.flush().await;
    assert!(tier.get_many(&keys).await.iter().all(Option::is_some));

    cluster.kill(1);
    // Thirty keys always touch the dead master's slots: each lookup fails soft.
    for _ in 0..3 {
        assert!(tier.get_many(&keys).await.iter().all(Option::is_none));
    }
    let h = tier.health();
    assert_eq!(h.status, HealthStatus::Degraded, "{h:?}");
    assert!(tier.snapshot().errors >= 2);
    // Skipped while open: no wait, a miss, counted.
    let skipped_at = std::time::Instant::now();
    assert!(tier.get_many(&keys[..1]).await[0].is_none());
    assert!(skipped_at.elapsed() < Duration::from_millis(50));

    cluster.restart(1);
    assert!(
        wait_for(&tier, HealthStatus::Ok).await,
        "the probe closes the circuit once every master answers"
    );
    tier.put(key(99), entry(99));
    tier.flush().await;
    // Redis kept nothing on disk: the restarted master's keys are gone, the
    // others' are still there, and new writes land on every node.
    let after = tier.get_many(&[key(99)]).await;
    assert_eq!(after[0].as_ref(), Some(&entry(99)));
    tier.clear().await.expect("clear");
}

#[tokio::test]
async fn serves_once_the_cluster_it_started_without_comes_up() {
    let mut cluster = PrivateCluster::start(3);
    for i in 0..3 {
        cluster.kill(i);
    }
    let tier = RedisTier::connect(
        &cluster_config(&cluster, &unique_prefix("cluster-late")),
        &cluster.urls()[0],
    )
    .expect("starts without a cluster");
    for _ in 0..3 {
        assert!(tier.get_many(&[key(1)]).await[0].is_none());
    }
    assert!(wait_for(&tier, HealthStatus::Degraded).await);
    for i in 0..3 {
        cluster.revive(i);
    }
    cluster.wait_ok();
    assert!(
        wait_for(&tier, HealthStatus::Ok).await,
        "the probe reaches the cluster"
    );
    tier.put(key(1), entry(1));
    tier.flush().await;
    assert_eq!(tier.get_many(&[key(1)]).await[0].as_ref(), Some(&entry(1)));
    tier.clear().await.expect("clear");
}

#[tokio::test]
async fn starts_while_the_cluster_is_down() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let config = osprey_cache::RedisConfig {
        cluster: true,
        ..osprey_cache::testkit::redis_config(&url, "osprey:")
    };
    let tier = RedisTier::connect(&config, &url).expect("starts without a cluster");
    assert!(
        tier.get_many(&[key(1), key(2)])
            .await
            .iter()
            .all(Option::is_none)
    );
    assert!(tier.snapshot().errors >= 1);
    assert!(
        tier.clear().await.is_err(),
        "cannot clear what it cannot reach"
    );
}
