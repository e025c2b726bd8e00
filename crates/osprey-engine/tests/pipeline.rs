#![allow(clippy::expect_used)]
//! The cache pipeline on the real model: per-item caching, single flight, and keys
//! that change with the model's revision.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use osprey_cache::{
    CacheConfig, DiskConfig, Entry, KeySpace, MemoryConfig, RedisConfig, Tier, TieredCache,
};
use osprey_engine::{CacheStatus, EmbedOptions, Pipeline};
use support::{engine_at, model_dir};

mod support;

fn memory_only() -> CacheConfig {
    CacheConfig {
        memory: MemoryConfig::default(),
        ..CacheConfig::disabled()
    }
}

/// Inputs the model has run since the engine started.
fn model_inputs(p: &Pipeline) -> u64 {
    p.engine().batch_counts().1
}

fn texts(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix} sentence number {i} about osprey caching"))
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[tokio::test]
async fn a_batch_with_30_cached_runs_the_model_on_2_and_keeps_order() {
    let engine = engine_at(&model_dir());
    let cache = Arc::new(TieredCache::open(&memory_only()).await.expect("cache"));
    let p = Pipeline::new(engine.clone(), Some(cache));
    let all = texts("order", 32);
    let opts = EmbedOptions::default();

    // Warm 30 of them (every index but 5 and 17).
    let warm: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5 && *i != 17)
        .map(|(_, t)| t.clone())
        .collect();
    let first = p.embed(&warm, opts).await.expect("warm");
    assert_eq!(first.cache, CacheStatus::Miss);
    assert_eq!(first.computed, 30);

    let before = model_inputs(&p);
    let out = p.embed(&all, opts).await.expect("mixed");
    assert_eq!(
        model_inputs(&p) - before,
        2,
        "the model ran on the 2 misses only"
    );
    assert_eq!(out.cache, CacheStatus::Partial);
    assert_eq!(out.computed, 2);

    // Each vector answers its own text: compare with the engine alone.
    let direct = engine.embed(&all, opts).await.expect("direct");
    for (i, (a, b)) in out.entries.iter().zip(&direct.vectors).enumerate() {
        assert!(cosine(&a.vector, b) > 0.9999, "input {i} out of order");
    }
    assert_eq!(out.tokens, direct.tokens, "usage counts cached inputs too");

    let again = p.embed(&all, opts).await.expect("all cached");
    assert_eq!(again.cache, CacheStatus::Hit(osprey_cache::Tier::Memory));
    assert_eq!(again.computed, 0);
}

#[tokio::test]
async fn identical_texts_in_flight_run_the_model_once() {
    let engine = engine_at(&model_dir());
    for cache in [
        None,
        Some(Arc::new(
            TieredCache::open(&memory_only()).await.expect("cache"),
        )),
    ] {
        let p = Pipeline::new(engine.clone(), cache);
        let text = vec![format!("single flight {}", p.cache().is_some())];
        let before = model_inputs(&p);
        // Sixteen requests polled together: the first starts a flight, the rest join it.
        let outs =
            futures::future::join_all((0..16).map(|_| p.embed(&text, EmbedOptions::default())))
                .await;
        assert_eq!(
            model_inputs(&p) - before,
            1,
            "one model run for 16 requests"
        );
        let outs: Vec<_> = outs.into_iter().map(|o| o.expect("embedded")).collect();
        assert_eq!(outs.iter().map(|o| o.computed).sum::<usize>(), 1);
        for o in &outs {
            assert_eq!(o.entries[0], outs[0].entries[0]);
        }
        assert_eq!(p.in_flight(), 0, "finished flights leave the registry");
    }
}

#[tokio::test]
async fn duplicates_within_a_request_run_once() {
    let engine = engine_at(&model_dir());
    let p = Pipeline::new(engine, None);
    let t = "the same text three times".to_string();
    let before = model_inputs(&p);
    let out = p
        .embed(&[t.clone(), t.clone(), t], EmbedOptions::default())
        .await
        .expect("embedded");
    assert_eq!(model_inputs(&p) - before, 1);
    assert_eq!(out.entries[0], out.entries[2]);
}

#[tokio::test]
async fn options_are_part_of_the_key() {
    let engine = engine_at(&model_dir());
    let cache = Arc::new(TieredCache::open(&memory_only()).await.expect("cache"));
    let p = Pipeline::new(engine, Some(cache));
    let t = vec!["options change the output".to_string()];
    let normalized = p.embed(&t, EmbedOptions::default()).await.expect("a");
    let raw = p
        .embed(
            &t,
            EmbedOptions {
                normalize: false,
                ..EmbedOptions::default()
            },
        )
        .await
        .expect("b");
    assert_eq!(
        raw.cache,
        CacheStatus::Miss,
        "a different option is a different key"
    );
    let n: f32 = raw.entries[0]
        .vector
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt();
    assert!((n - 1.0).abs() > 1e-3, "unnormalized vector served");
    let short = p
        .embed(
            &t,
            EmbedOptions {
                dimensions: Some(64),
                ..EmbedOptions::default()
            },
        )
        .await
        .expect("c");
    assert_eq!(short.entries[0].vector.len(), 64);
    assert_eq!(normalized.entries[0].vector.len(), 384);
}

#[tokio::test]
async fn too_long_inputs_fail_only_their_own_request() {
    let engine = engine_at(&model_dir());
    let p = Pipeline::new(engine, None);
    let long = "word ".repeat(400);
    let strict = EmbedOptions {
        truncate: false,
        ..EmbedOptions::default()
    };
    let err = p
        .embed(&["fine".to_string(), long], strict)
        .await
        .expect_err("too long");
    assert!(
        matches!(
            err,
            osprey_engine::EngineError::InputTooLong { index: 1, .. }
        ),
        "{err}"
    );
}

/// A copy of the model whose config differs in a field the model ignores: same
/// vectors, different revision.
fn model_copy_with_new_revision(dir: &Path) -> tempfile::TempDir {
    let src = model_dir();
    let out = tempfile::tempdir_in(dir).expect("tempdir");
    for entry in walk(&src) {
        let rel = entry.strip_prefix(&src).expect("relative");
        if rel.starts_with("onnx") {
            continue;
        }
        let to = out.path().join(rel);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&entry, &to).expect("copy");
    }
    let cfg = out.path().join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg).expect("read config")).expect("json");
    json["osprey_test_marker"] = serde_json::json!(2);
    std::fs::write(&cfg, serde_json::to_vec(&json).expect("ser")).expect("write config");
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn a_new_model_revision_never_sees_old_vectors() {
    let work = tempfile::tempdir().expect("tempdir");
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let config = CacheConfig {
        share_across_keys: true,
        memory: MemoryConfig {
            max_bytes: 0,
            ..MemoryConfig::default()
        },
        disk: DiskConfig {
            path: Some(work.path().join("cache.redb")),
            ..DiskConfig::default()
        },
        redis: RedisConfig {
            url: Some(redis_url),
            key_prefix: format!("osprey-test:revision:{}:", std::process::id()),
            ..RedisConfig::default()
        },
    };
    let cache = Arc::new(TieredCache::open(&config).await.expect("cache"));
    let t = vec!["revision test sentence".to_string()];

    let old = Pipeline::new(engine_at(&model_dir()), Some(cache.clone()));
    old.embed(&t, EmbedOptions::default()).await.expect("old");
    cache.flush().await;
    let hit = old
        .embed(&t, EmbedOptions::default())
        .await
        .expect("old again");
    assert_eq!(hit.cache, CacheStatus::Hit(osprey_cache::Tier::Disk));

    let copy = model_copy_with_new_revision(work.path());
    let new = Pipeline::new(engine_at(copy.path()), Some(cache.clone()));
    assert_ne!(old.info().revision, new.info().revision);
    let fresh = new.embed(&t, EmbedOptions::default()).await.expect("new");
    assert_eq!(
        fresh.cache,
        CacheStatus::Miss,
        "different revision, different keys"
    );
    cache.clear().await.expect("clear");
}

/// Entries on disk or in Redis are stored under keys made in one fixed order
/// (model, revision, backend, pooling, processing version, normalize, truncate,
/// dimensions); the pipeline must keep finding them, for every option set. A
/// change to this order or to the processing version retires every stored entry.
#[tokio::test]
async fn keys_match_the_ones_stored_entries_were_made_with() {
    let engine = engine_at(&model_dir());
    let info = engine.info().clone();
    let cache = Arc::new(TieredCache::open(&memory_only()).await.expect("cache"));
    let p = Pipeline::new(engine, Some(cache.clone()));
    let cases = [
        (true, true, None),
        (false, true, None),
        (true, false, None),
        (false, false, None),
        (true, true, Some(8)),
    ];
    for (i, (normalize, truncate, dimensions)) in cases.into_iter().enumerate() {
        let text = format!("stored by an earlier build, case {i}");
        let key = KeySpace::new(&info.id, &info.revision)
            .option("backend", info.backend)
            .option("pooling", format!("{:?}", info.pooling))
            .option("processing", 1)
            .option("normalize", normalize)
            .option("truncate", truncate)
            .option("dimensions", dimensions.unwrap_or(0))
            .key(&text);
        // A vector no model run would give, so a hit is told from a computation.
        let stored = vec![i as f32 + 7.0; dimensions.unwrap_or(info.dims)];
        cache.put_many(&[(key, Entry::new(stored.clone(), 3))]);
        let opts = EmbedOptions {
            normalize,
            truncate,
            dimensions,
        };
        let out = p.embed(&[text], opts).await.expect("embed");
        assert_eq!(out.cache, CacheStatus::Hit(Tier::Memory), "case {i}");
        assert_eq!(&out.entries[0].vector[..], &stored[..], "case {i}");
    }
}
