#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::{Duration, Instant};
use osprey_collections::{Collections, CollectionsConfig, CollectionParams, Distance, Point, PointId, SearchRequest};

fn read(path: &str) -> Vec<Vec<f32>> {
    let b = std::fs::read(path).unwrap();
    let f: Vec<f32> = b.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    f.chunks(384).map(|c| c.to_vec()).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let datatype_f16 = args.get(1).is_some_and(|a| a == "f16");
    let data = read("/tmp/walk/data.f32");
    let q = read("/tmp/walk/q.f32");
    let dir = tempfile::tempdir().unwrap();
    let cfg = CollectionsConfig { path: dir.path().join("c"), ..CollectionsConfig::default() };
    let c = Collections::open(&cfg).unwrap();
    let mut p = CollectionParams::new(384, Distance::Cosine);
    if datatype_f16 { p.datatype = osprey_collections::Datatype::Float16; }
    c.create("b", p).unwrap();
    let t = Instant::now();
    for (i, chunk) in data.chunks(1000).enumerate() {
        let pts = chunk.iter().enumerate().map(|(j, v)| Point { id: PointId::Num((i * 1000 + j) as u64), vector: v.clone(), payload: Default::default() }).collect();
        c.upsert("b", pts).unwrap();
    }
    c.wait_indexed("b", Duration::from_secs(3000)).unwrap();
    eprintln!("indexed in {:.1}s", t.elapsed().as_secs_f64());
    for round in 0..5 {
        let mut ts = Vec::new();
        for v in &q {
            let req = SearchRequest { vector: v.clone(), limit: 10, with_payload: true, ..Default::default() };
            let a = Instant::now();
            let r = c.search("b", &req).unwrap();
            ts.push(a.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(r);
        }
        ts.sort_by(f64::total_cmp);
        println!("round {round}: p50 {:.3} ms", ts[ts.len() / 2]);
    }
}
