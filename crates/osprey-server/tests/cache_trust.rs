#![allow(clippy::expect_used)]
//! What the cache may trust and tell: values in the shared Redis tier are checked
//! (and optionally sealed) before they are served or copied, copies keep Redis's
//! remaining TTL, callers with different keys can be kept apart, and responses can
//! keep quiet about how the cache answered. Real model, real Redis, real HTTP.

mod common;

use std::sync::{Arc, OnceLock};

use common::{Reply, cosine, post_json, reference};
use osprey_cache::testkit::{keys_under, redis_config, shared_redis_url, unique_prefix};
use osprey_engine::cache::{
    CacheConfig, CacheKey, Clock, DiskConfig, Entry, MacKey, MemoryConfig, RedisConfig, RedisTier,
    SystemClock, TieredCache,
};
use osprey_engine::{BackendKind, BatchingConfig, Engine, EngineConfig, Pipeline, Served};
use osprey_server::auth::digest_hex;
use osprey_server::{AppState, AuthConfig, LimitsConfig, Protection, ServerConfig};
use serde_json::{Value, json};

const NAME: &str = "all-MiniLM-L6-v2";

/// One engine for every instance of this binary: each test's servers put their
/// own caches and settings in front of it.
fn engine() -> Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let config = EngineConfig {
                model_path: common::model_dir(),
                backend: BackendKind::Candle,
                precision: Default::default(),
                profile: String::new(),
                onnxruntime_lib: None,
                onnx_prepack: false,
                batching: BatchingConfig::default(),
                admission: limits().admission(),
            };
            Arc::new(Engine::start(&config).expect("the test model loads"))
        })
        .clone()
}

/// No deadline or queue bound to speak of: these tests check answers, not load.
fn limits() -> LimitsConfig {
    LimitsConfig {
        deadline_ms: 300_000,
        max_queue_ms: 0,
        ..LimitsConfig::default()
    }
}

/// A server instance on an ephemeral port, in the calling test's runtime.
struct Instance {
    base: String,
    cache: Arc<TieredCache>,
}

async fn start(cache: CacheConfig, protection: Protection, expose_cache_status: bool) -> Instance {
    let engine = tokio::task::spawn_blocking(engine)
        .await
        .expect("engine task");
    let cache = Arc::new(TieredCache::open(&cache).await.expect("open the cache"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("local address");
    let state = AppState::new(ServerConfig::default(), osprey_server::install_metrics())
        .with_protection(protection)
        .with_cache_status(expose_cache_status);
    let pipeline = Arc::new(Pipeline::new(engine, Some(cache.clone())));
    state.models.registry().loading(NAME);
    state.engine.set(pipeline.clone());
    let served = Served::new(NAME.into(), "1".into(), None, pipeline);
    assert!(state.models.registry().add(served).is_ok(), "one model");
    state.models.registry().loaded(Some(NAME));
    tokio::spawn(osprey_server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    Instance {
        base: format!("http://127.0.0.1:{}", addr.port()),
        cache,
    }
}

fn open_protection() -> Protection {
    Protection::new(&AuthConfig::default(), &limits()).expect("auth off")
}

/// Only the shared Redis tier, under `prefix`.
fn redis_only(prefix: &str) -> CacheConfig {
    CacheConfig {
        memory: MemoryConfig {
            max_bytes: 0,
            ..MemoryConfig::default()
        },
        redis: redis_config(&shared_redis_url(), prefix),
        ..CacheConfig::default()
    }
}

/// Memory, a disk tier in `dir`, and Redis under `prefix`.
fn all_tiers(dir: &tempfile::TempDir, prefix: &str) -> CacheConfig {
    CacheConfig {
        disk: DiskConfig {
            path: Some(dir.path().join("cache.redb")),
            ..DiskConfig::default()
        },
        redis: redis_config(&shared_redis_url(), prefix),
        ..CacheConfig::default()
    }
}

/// A Redis tier of the test's own under `prefix`: what anyone able to write the
/// shared prefix can do.
fn tier(prefix: &str, tweak: impl FnOnce(&mut RedisConfig)) -> RedisTier {
    let mut config = redis_config(&shared_redis_url(), prefix);
    tweak(&mut config);
    RedisTier::connect(&config, &shared_redis_url()).expect("connect")
}

async fn embed(base: &str, texts: &[&str]) -> Reply {
    let reply = post_json(
        &common::client(),
        &format!("{base}/embed"),
        json!({ "inputs": texts }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
}

/// The reference case for `text`: the float64 sentence-transformers output.
fn expected(text: &str) -> Vec<f64> {
    reference()
        .cases
        .iter()
        .find(|c| c.text == text)
        .expect("a reference case")
        .embedding
        .clone()
}

fn texts(n: usize) -> Vec<String> {
    reference()
        .cases
        .iter()
        .map(|c| c.text.clone())
        .filter(|t| !t.is_empty())
        .take(n)
        .collect()
}

/// The stored keys under `prefix`, in the order of `texts` as `writer` answered
/// them (matched by the vectors `reader` reads back).
async fn keys_of(prefix: &str, reader: &RedisTier, answered: &[Vec<f32>]) -> Vec<CacheKey> {
    let keys = keys_under(&shared_redis_url(), prefix).await;
    assert_eq!(keys.len(), answered.len(), "one Redis entry per text");
    let stored = reader.get_many(&keys).await;
    answered
        .iter()
        .map(|v| {
            let at = stored
                .iter()
                .position(|s| s.as_ref().is_some_and(|e| &e.vector[..] == v.as_slice()))
                .expect("each answer is stored");
            keys[at]
        })
        .collect()
}

fn assert_real(reply: &Reply, texts: &[&str]) {
    let got = reply.vectors();
    assert_eq!(got.len(), texts.len());
    for (v, t) in got.iter().zip(texts) {
        assert_eq!(v.len(), 384, "{t:?}: dims");
        let c = cosine(v, &expected(t));
        assert!(c > 0.9999, "{t:?}: cosine to the reference {c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poisoned_redis_values_are_neither_served_nor_copied() {
    let prefix = unique_prefix("poison");
    let owned = texts(2);
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let writer = start(redis_only(&prefix), open_protection(), true).await;
    let first = embed(&writer.base, &texts).await;
    assert_real(&first, &texts);
    writer.cache.flush().await;
    let plain = tier(&prefix, |_| {});
    let keys = keys_of(&prefix, &plain, &first.vectors()).await;

    // Well-formed values a model never outputs: one dimension short, and a NaN.
    let real = first.vectors();
    plain.put(keys[0], Entry::new(real[0][..383].to_vec(), 7));
    let mut nan = real[1].clone();
    nan[5] = f32::NAN;
    plain.put(keys[1], Entry::new(nan, 7));
    plain.flush().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let reader = start(all_tiers(&dir, &prefix), open_protection(), true).await;
    let reply = embed(&reader.base, &texts).await;
    assert_real(&reply, &texts);
    assert_eq!(
        reply.header("x-cache"),
        Some("miss"),
        "nothing usable cached"
    );

    // What the reader keeps is what it computed, never the poisoned values.
    reader.cache.flush().await;
    let disk = reader.cache.disk().expect("a disk tier");
    for (entry, v) in disk.get_many(&keys).await.iter().zip(reply.vectors()) {
        let entry = entry.as_ref().expect("the computed entry is on disk");
        assert_eq!(&entry.vector[..], v.as_slice());
    }
    let again = embed(&reader.base, &texts).await;
    assert_eq!(again.header("x-cache"), Some("hit-l1"));
    assert_eq!(again.vectors(), reply.vectors());
    // And Redis holds the real values again.
    let healed = plain.get_many(&keys).await;
    for (e, v) in healed.iter().zip(reply.vectors()) {
        assert_eq!(e.as_ref().map(|e| e.vector.to_vec()), Some(v));
    }
    plain.clear().await.expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_hit_keeps_its_remaining_ttl() {
    let prefix = unique_prefix("ttl-kept");
    let owned = texts(3);
    let text = [owned[2].as_str()];
    let writer = start(redis_only(&prefix), open_protection(), true).await;
    let first = embed(&writer.base, &text).await;
    writer.cache.flush().await;
    // The entry is rewritten to expire from Redis in five minutes.
    let short = tier(&prefix, |c| c.ttl_secs = 300);
    let keys = keys_of(&prefix, &short, &first.vectors()).await;
    let stored = short.get_many(&keys).await;
    short.put(keys[0], stored[0].clone().expect("stored"));
    short.flush().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let reader = start(all_tiers(&dir, &prefix), open_protection(), true).await;
    let reply = embed(&reader.base, &text).await;
    assert_eq!(reply.header("x-cache"), Some("hit-l3"));
    assert_eq!(reply.vectors(), first.vectors());
    reader.cache.flush().await;
    let now = SystemClock.now_ms();
    let expires = reader
        .cache
        .disk()
        .expect("a disk tier")
        .expiry(keys[0])
        .await
        .expect("read the disk tier")
        .expect("copied to disk");
    assert!(
        expires > now && expires <= now + 300_000,
        "disk copy expires in {} ms, Redis's in at most 300000",
        expires.saturating_sub(now)
    );
    short.clear().await.expect("clean up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_redis_tier_refuses_values_written_without_the_secret() {
    let prefix = unique_prefix("sealed");
    let secret = MacKey::new("a secret every instance shares");
    let sealed = |p: &str| {
        let mut c = redis_only(p);
        c.redis.hmac_key = Some(secret.clone());
        c
    };
    let owned = texts(2);
    let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
    let writer = start(sealed(&prefix), open_protection(), true).await;
    let first = embed(&writer.base, &texts).await;
    writer.cache.flush().await;
    let with_secret = tier(&prefix, |c| c.hmac_key = Some(secret.clone()));
    let keys = keys_of(&prefix, &with_secret, &first.vectors()).await;

    // Someone without the secret replaces the second text's value with a
    // plausible one: the right length, finite, unit norm.
    let forged: Vec<f32> = vec![1.0 / (384f32).sqrt(); 384];
    let plain = tier(&prefix, |_| {});
    plain.put(keys[1], Entry::new(forged, 9));
    plain.flush().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = all_tiers(&dir, &prefix);
    config.redis.hmac_key = Some(secret.clone());
    let reader = start(config, open_protection(), true).await;
    let reply = embed(&reader.base, &texts).await;
    assert_real(&reply, &texts);
    assert_eq!(
        reply.header("x-cache"),
        Some("partial"),
        "the sealed value served, the forged one not"
    );
    with_secret.clear().await.expect("clean up");
}

/// Auth on with two infer keys, for two tenants.
fn two_tenants(dir: &tempfile::TempDir) -> Protection {
    let keys = dir.path().join("keys.toml");
    std::fs::write(
        &keys,
        format!(
            "[[keys]]\nname = \"tenant-a\"\nscope = \"infer\"\nsha256 = \"{}\"\n\n\
             [[keys]]\nname = \"tenant-b\"\nscope = \"infer\"\nsha256 = \"{}\"\n",
            digest_hex(KEY_A),
            digest_hex(KEY_B)
        ),
    )
    .expect("write keys");
    let auth = AuthConfig {
        enabled: true,
        keys_file: Some(keys),
        keys_env: String::new(),
        ..AuthConfig::default()
    };
    Protection::new(&auth, &limits()).expect("auth with two keys")
}

const KEY_A: &str = "tenant-a-key-0123456789";
const KEY_B: &str = "tenant-b-key-9876543210";

async fn embed_as(base: &str, key: &str, text: &str) -> Reply {
    let resp = common::client()
        .post(format!("{base}/embed"))
        .bearer_auth(key)
        .json(&json!({ "inputs": [text] }))
        .send()
        .await
        .expect("POST /embed");
    let reply = Reply::read(resp).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_apart_never_see_each_others_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = unique_prefix("tenants");
    let text = "a text only tenant a has embedded";
    let mut config = all_tiers(&dir, &prefix);
    config.share_across_keys = false;
    let apart = start(config, two_tenants(&dir), true).await;
    let a = embed_as(&apart.base, KEY_A, text).await;
    assert_eq!(a.header("x-cache"), Some("miss"));
    assert_eq!(
        embed_as(&apart.base, KEY_A, text).await.header("x-cache"),
        Some("hit-l1")
    );
    let b = embed_as(&apart.base, KEY_B, text).await;
    assert_eq!(b.header("x-cache"), Some("miss"), "b's first request");
    assert_eq!(b.vectors(), a.vectors());
    assert_eq!(
        embed_as(&apart.base, KEY_B, text).await.header("x-cache"),
        Some("hit-l1"),
        "b's own entry"
    );

    // Shared (the default), the same two keys hit each other's entries.
    let shared_dir = tempfile::tempdir().expect("tempdir");
    let shared_prefix = unique_prefix("tenants-shared");
    let shared = start(
        all_tiers(&shared_dir, &shared_prefix),
        two_tenants(&shared_dir),
        true,
    )
    .await;
    embed_as(&shared.base, KEY_A, text).await;
    assert_eq!(
        embed_as(&shared.base, KEY_B, text).await.header("x-cache"),
        Some("hit-l1")
    );
    for p in [&prefix, &shared_prefix] {
        tier(p, |_| {}).clear().await.expect("clean up");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_cache_status_leaves_no_trace_in_the_headers() {
    let config = CacheConfig::default();
    let quiet = start(config, open_protection(), false).await;
    let text = "is this text cached?";
    for round in 0..2 {
        for (path, body) in [
            ("/embed", json!({ "inputs": [text] })),
            ("/v1/embeddings", json!({ "input": [text] })),
        ] {
            let reply = post_json(&common::client(), &format!("{}{path}", quiet.base), body).await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            assert_eq!(reply.header("x-cache"), None, "{path} round {round}");
            let timing = reply.header("server-timing").expect("server-timing");
            assert!(
                timing.contains("validate;dur=") && timing.contains("serialize;dur="),
                "{timing}"
            );
            for stage in [
                "cache;",
                "tokenize;",
                "queue;",
                "inference;",
                "postprocess;",
            ] {
                assert!(!timing.contains(stage), "{path}: {timing}");
            }
            assert_ne!(reply.json, Value::Null);
        }
    }
    // The entry is there all the same: the stats count the hits.
    let stats = quiet.cache.stats();
    assert!(stats.tiers.iter().any(|t| t.hits > 0), "{stats:?}");
}
