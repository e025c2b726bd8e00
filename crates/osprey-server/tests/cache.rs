#![allow(clippy::expect_used)]
//! The result cache through HTTP: `x-cache`, `/admin/cache`, instances sharing
//! Redis, and Redis dying under load without a single failed request.

mod common;

use std::time::Duration;

use common::{Reply, client, embed_reply as embed, get, post_json, start_with_cache};
use osprey_cache::testkit::{
    PrivateRedis, free_port, redis_config, shared_redis_url, unique_prefix,
};
use osprey_engine::BatchingConfig;
use osprey_engine::cache::{CacheConfig, DiskConfig, MemoryConfig, RedisConfig};
use osprey_server::ServerConfig;
use serde_json::json;

/// Memory and disk tiers (the disk in `dir`), shared across keys, with `redis`.
fn memory_and_disk(dir: &tempfile::TempDir, redis: RedisConfig) -> Option<CacheConfig> {
    Some(CacheConfig {
        share_across_keys: true,
        memory: MemoryConfig::default(),
        disk: DiskConfig {
            path: Some(dir.path().join("cache.redb")),
            ..DiskConfig::default()
        },
        redis,
    })
}

fn no_memory() -> MemoryConfig {
    MemoryConfig {
        max_bytes: 0,
        ..MemoryConfig::default()
    }
}

#[tokio::test]
async fn x_cache_tells_miss_hit_and_partial_and_admin_clears() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with_cache(
        ServerConfig::default(),
        BatchingConfig::default(),
        memory_and_disk(
            &dir,
            redis_config(&shared_redis_url(), &unique_prefix("xcache")),
        ),
    );
    let base = &server.base;
    let miss = embed(base, json!(["alpha text", "beta text"])).await;
    assert_eq!(miss.header("x-cache"), Some("miss"));
    let hit = embed(base, json!(["alpha text", "beta text"])).await;
    assert_eq!(hit.header("x-cache"), Some("hit-l1"));
    assert_eq!(
        hit.vectors(),
        miss.vectors(),
        "a hit answers the same vectors"
    );
    let timing = hit.header("server-timing").expect("server-timing");
    assert!(timing.contains("cache;dur="), "{timing}");
    let partial = embed(base, json!(["beta text", "gamma text"])).await;
    assert_eq!(partial.header("x-cache"), Some("partial"));
    assert_eq!(partial.vectors()[0], miss.vectors()[1], "order kept");

    let stats = get(&client(), &format!("{base}/admin/cache")).await;
    assert_eq!(stats.status, 200, "{}", stats.text);
    assert_eq!(stats.json["enabled"], true);
    let tiers = stats.json["tiers"].as_array().expect("tiers");
    let names: Vec<&str> = tiers.iter().filter_map(|t| t["tier"].as_str()).collect();
    assert_eq!(names, ["memory", "disk", "redis"]);
    assert_eq!(tiers[0]["hits"], 3, "{}", stats.text);
    assert!(tiers[0]["entries"].as_u64().expect("entries") >= 3);

    // The disk tier answers once memory is empty; Redis once disk is too.
    server.pipeline.cache().expect("cache").flush().await;
    let cleared = client()
        .delete(format!("{base}/admin/cache"))
        .send()
        .await
        .expect("DELETE /admin/cache");
    let cleared = Reply::read(cleared).await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.json["cleared"]["memory"], true);
    assert_eq!(cleared.json["cleared"]["redis_keys"], 3);
    let after = embed(base, json!(["alpha text"])).await;
    assert_eq!(after.header("x-cache"), Some("miss"), "cleared everywhere");

    let metrics = get(&client(), &format!("{base}/metrics")).await;
    for needle in [
        "osprey_cache_requests_total{tier=\"memory\",result=\"hit\"}",
        "osprey_cache_lookup_duration_seconds",
        "osprey_cache_entries{tier=\"disk\"}",
        "osprey_stage_duration_seconds_bucket{stage=\"cache\"",
    ] {
        assert!(
            metrics.text.contains(needle),
            "{needle} missing from /metrics"
        );
    }
}

#[tokio::test]
async fn admin_clears_one_tier_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with_cache(
        ServerConfig::default(),
        BatchingConfig::default(),
        memory_and_disk(&dir, Default::default()),
    );
    let base = &server.base;
    let delete = |query: &'static str| async move {
        let r = client()
            .delete(format!("{base}/admin/cache{query}"))
            .send()
            .await
            .expect("DELETE /admin/cache");
        Reply::read(r).await
    };
    let miss = embed(base, json!(["one tier at a time"])).await;
    assert_eq!(miss.header("x-cache"), Some("miss"));
    server.pipeline.cache().expect("cache").flush().await;

    // Memory only: the next lookup misses memory and finds the disk's copy.
    let cleared = delete("?tier=memory").await;
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.json["cleared"]["memory"], true);
    assert_eq!(cleared.json["cleared"]["disk"], false);
    let again = embed(base, json!(["one tier at a time"])).await;
    assert_eq!(again.header("x-cache"), Some("hit-l2"), "the disk kept it");
    assert_eq!(again.vectors(), miss.vectors());

    // Disk, then memory: gone from both.
    assert_eq!(delete("?tier=disk").await.json["cleared"]["disk"], true);
    assert_eq!(delete("?tier=memory").await.status, 200);
    let gone = embed(base, json!(["one tier at a time"])).await;
    assert_eq!(gone.header("x-cache"), Some("miss"));

    // A tier that is not configured, an unknown one, an unknown parameter.
    delete("?tier=redis")
        .await
        .assert_error(422, "clearing a tier that is off");
    delete("?tier=l1")
        .await
        .assert_error(400, "an unknown tier");
    delete("?tiers=memory")
        .await
        .assert_error(400, "an unknown parameter");
}

#[tokio::test]
async fn disk_tier_answers_when_memory_misses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with_cache(
        ServerConfig::default(),
        BatchingConfig::default(),
        Some(CacheConfig {
            memory: no_memory(),
            disk: DiskConfig {
                path: Some(dir.path().join("cache.redb")),
                ..DiskConfig::default()
            },
            ..CacheConfig::disabled()
        }),
    );
    let first = embed(&server.base, json!("persisted text")).await;
    assert_eq!(first.header("x-cache"), Some("miss"));
    server.pipeline.cache().expect("cache").flush().await;
    let second = embed(&server.base, json!("persisted text")).await;
    assert_eq!(second.header("x-cache"), Some("hit-l2"));
    assert_eq!(second.vectors(), first.vectors());
}

#[tokio::test]
async fn a_second_instance_answers_from_redis() {
    let prefix = unique_prefix("shared");
    let config = || {
        Some(CacheConfig {
            redis: redis_config(&shared_redis_url(), &prefix),
            ..CacheConfig::default()
        })
    };
    let a = start_with_cache(ServerConfig::default(), BatchingConfig::default(), config());
    let b = start_with_cache(ServerConfig::default(), BatchingConfig::default(), config());
    let first = embed(&a.base, json!(["shared across instances"])).await;
    assert_eq!(first.header("x-cache"), Some("miss"));
    a.pipeline.cache().expect("cache").flush().await;
    let second = embed(&b.base, json!(["shared across instances"])).await;
    assert_eq!(second.header("x-cache"), Some("hit-l3"));
    assert_eq!(second.vectors(), first.vectors());
    let before = b.engine.batch_counts().1;
    let third = embed(&b.base, json!(["shared across instances"])).await;
    assert_eq!(
        third.header("x-cache"),
        Some("hit-l1"),
        "promoted into memory"
    );
    assert_eq!(
        b.engine.batch_counts().1,
        before,
        "instance b never ran the model"
    );
    b.pipeline
        .cache()
        .expect("cache")
        .clear()
        .await
        .expect("clear");
}

#[tokio::test]
async fn redis_killed_mid_load_fails_no_request() {
    let port = free_port();
    let redis = PrivateRedis::start(port);
    let url = format!("redis://127.0.0.1:{port}");
    // No memory tier: every lookup goes to Redis, so its death is felt at once.
    let server = start_with_cache(
        ServerConfig::default(),
        BatchingConfig::default(),
        Some(CacheConfig {
            memory: no_memory(),
            redis: redis_config(&url, "osprey:"),
            ..CacheConfig::disabled()
        }),
    );
    let base = server.base.clone();
    let texts: Vec<String> = (0..20).map(|i| format!("load text number {i}")).collect();
    let load = |round: usize| {
        let base = base.clone();
        let texts = texts.clone();
        tokio::spawn(async move {
            let c = client();
            let mut statuses = Vec::new();
            for i in 0..15 {
                let t = &texts[(round * 7 + i) % texts.len()];
                let r = post_json(&c, &format!("{base}/embed"), json!({ "inputs": [t] })).await;
                statuses.push(r.status);
            }
            statuses
        })
    };
    let first: Vec<_> = (0..6).map(load).collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(redis); // killed while requests are in flight
    let second: Vec<_> = (6..12).map(load).collect();
    let mut total = 0;
    for h in first.into_iter().chain(second) {
        for status in h.await.expect("load task") {
            assert_eq!(status, 200, "a request failed while redis died");
            total += 1;
        }
    }
    assert_eq!(total, 180);

    let ready = get(&client(), &format!("{base}/health/ready")).await;
    assert_eq!(
        ready.status, 200,
        "a dead cache tier does not make the server unready"
    );
    assert_eq!(ready.json["status"], "degraded", "{}", ready.text);
    assert_eq!(
        ready.json["components"]["cache_redis"]["status"], "degraded",
        "{}",
        ready.text
    );

    // Redis back: the probe notices and the tier serves again.
    let _redis = PrivateRedis::start(port);
    let mut ok = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = get(&client(), &format!("{base}/health/ready")).await;
        if r.json["components"]["cache_redis"]["status"] == "ok" {
            ok = true;
            break;
        }
    }
    assert!(ok, "redis tier recovers");
}
