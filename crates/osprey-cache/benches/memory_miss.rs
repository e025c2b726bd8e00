//! What the memory tier adds to a cache miss: one lookup that finds nothing and one
//! insert of the fresh 384-dimension vector, on a tier already full at its default
//! 128 MiB so every insert also evicts. The key is hashed whether or not the cache
//! is on, so it is measured on its own, for scale.
//!
//! `cargo bench -p osprey-cache --bench memory_miss`

#![allow(clippy::expect_used)] // a benchmark: a failed setup ends it

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use osprey_cache::{CacheConfig, CacheKey, Entry, KeySpace, MemoryConfig, TieredCache};

const DIMS: usize = 384;

fn vector(seed: u64) -> Vec<f32> {
    (0..DIMS)
        .map(|i| ((seed.wrapping_mul(31).wrapping_add(i as u64)) % 997) as f32 / 997.0)
        .collect()
}

fn text(n: u64) -> String {
    format!("sentence number {n} about the weather, the sea and the birds above the water")
}

fn memory_miss(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let config = CacheConfig {
        memory: MemoryConfig::default(),
        ..CacheConfig::disabled()
    };
    let cache = rt
        .block_on(TieredCache::open(&config))
        .expect("a memory-only cache");
    let space = KeySpace::new("all-MiniLM-L6-v2", "bench")
        .option("normalize", true)
        .option("truncate", true);
    // Fill past capacity: about 1.6 KB per entry, 128 MiB holds about 80,000.
    let shared = Entry::new(vector(0), 17);
    for n in 0..120_000u64 {
        cache.put_many(&[(space.key(&text(n)), shared.clone())]);
    }

    let mut n = 1_000_000u64;
    c.bench_function("key of one text (paid with the cache off too)", |b| {
        b.iter(|| {
            black_box(space.key(black_box(
                "a sentence of about seventeen tokens, give or take a few",
            )))
        })
    });
    c.bench_function("memory tier: miss lookup + insert, one 384-d vector", |b| {
        b.iter_batched(
            || {
                n += 1;
                (space.key(&text(n)), Entry::new(vector(n), 17))
            },
            |(key, entry): (CacheKey, Entry)| {
                let found = rt.block_on(cache.get_many(std::slice::from_ref(&key)));
                assert!(found[0].is_none(), "a fresh key must miss");
                cache.put_many(&[(key, entry)]);
            },
            BatchSize::SmallInput,
        )
    });
    let stats = cache.stats();
    black_box(stats);
}

criterion_group!(benches, memory_miss);
criterion_main!(benches);
