//! What the checks on values from a shared tier cost: the length and finiteness
//! check of an entry read from disk or Redis, and the keyed BLAKE3 seal of a Redis
//! value (`cache.redis.hmac_key`), made on write and verified on read. A
//! 384-dimension vector, as all-MiniLM-L6-v2 gives. Decoding the value, which a
//! read pays anyway, is measured too, for scale.
//!
//! `cargo bench --workspace --all-features --bench value_checks`

#![allow(clippy::expect_used)] // a benchmark: a failed setup ends it

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use osprey_cache::{Entry, KeySpace, MacKey, Seal, decode, encode};

const DIMS: usize = 384;

fn value_checks(c: &mut Criterion) {
    // Values of a normalized embedding's size, none repeated.
    let vector: Vec<f32> = (0..DIMS)
        .map(|i| ((i as f32) * 0.618).sin() / (DIMS as f32).sqrt())
        .collect();
    let entry = Entry::new(vector, 17);
    let key = KeySpace::new("all-MiniLM-L6-v2", "bench")
        .option("normalize", true)
        .key("the tide came in over the flats at dusk");
    let seal = Seal::new(&MacKey::new("a secret of at least sixteen bytes"));
    let body = encode(&entry);
    let sealed = seal.seal(&key, body.clone());

    let mut g = c.benchmark_group("value");
    g.bench_function("entry_check_384", |b| {
        b.iter(|| black_box(&entry).check(DIMS).is_ok())
    });
    // The encoded value is copied outside the timed part: the seal takes it by value.
    g.bench_function("seal_384", |b| {
        b.iter_batched(
            || body.clone(),
            |v| seal.seal(black_box(&key), v),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("open_384", |b| {
        b.iter(|| seal.open(black_box(&key), black_box(&sealed)).is_ok())
    });
    g.bench_function("decode_384", |b| {
        b.iter(|| decode(black_box(&body)).expect("a value"))
    });
    g.finish();
    eprintln!(
        "encoded value: {} bytes, sealed {}",
        body.len(),
        sealed.len()
    );
}

criterion_group!(benches, value_checks);
criterion_main!(benches);
