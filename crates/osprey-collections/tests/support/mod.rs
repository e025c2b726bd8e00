//! Test data: seeded clustered vectors and an exact f64 reference search.
#![allow(dead_code)]

use osprey_collections::{
    CollectionParams, Collections, CollectionsConfig, Distance, Payload, Point, PointId,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde_json::json;

pub fn config(dir: &tempfile::TempDir) -> CollectionsConfig {
    CollectionsConfig {
        path: dir.path().join("collections"),
        ..CollectionsConfig::default()
    }
}

pub fn params(size: usize, distance: Distance) -> CollectionParams {
    CollectionParams::new(size, distance)
}

/// Gaussian clusters: `clusters` centres ~ N(0, 1); a point is its centre plus a
/// random combination of `rank` directions of that cluster plus a little
/// isotropic noise, so neighbours are meaningful as with real embeddings.
pub struct Clusters {
    centres: Vec<Vec<f64>>,
    bases: Vec<Vec<Vec<f64>>>,
    dims: usize,
    rng: SmallRng,
}

impl Clusters {
    pub fn new(dims: usize, clusters: usize, rank: usize, seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let n = Normal::new(0.0, 1.0).unwrap();
        let centres = (0..clusters)
            .map(|_| (0..dims).map(|_| n.sample(&mut rng)).collect())
            .collect();
        let bases = (0..clusters)
            .map(|_| {
                (0..rank)
                    .map(|_| (0..dims).map(|_| n.sample(&mut rng) * 0.35).collect())
                    .collect()
            })
            .collect();
        Self {
            centres,
            bases,
            dims,
            rng,
        }
    }

    /// A vector and the cluster it came from.
    pub fn sample(&mut self) -> (Vec<f32>, usize) {
        let n = Normal::new(0.0, 1.0).unwrap();
        let c = self.rng.random_range(0..self.centres.len());
        let mut v = self.centres[c].clone();
        for b in &self.bases[c] {
            let z: f64 = n.sample(&mut self.rng);
            for (x, y) in v.iter_mut().zip(b) {
                *x += z * y;
            }
        }
        for x in v.iter_mut() {
            *x += 0.1 * n.sample(&mut self.rng);
        }
        debug_assert_eq!(v.len(), self.dims);
        (v.iter().map(|x| *x as f32).collect(), c)
    }

    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }
}

/// A payload with a little of everything the filter tests look at.
pub fn payload_for(i: u64, cluster: usize) -> Payload {
    let cities = ["London", "Paris", "Berlin", "Rome", "Oslo"];
    let tags: Vec<&str> = ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .filter(|(k, _)| (i >> k) & 1 == 1)
        .map(|(_, t)| *t)
        .collect();
    json!({
        "cluster": cluster,
        "group": i % 10,
        "tags": tags,
        "meta": {"city": cities[(i % 5) as usize], "rank": (i * 7) % 100},
        "price": (i % 1000) as f64 / 10.0,
    })
    .as_object()
    .cloned()
    .unwrap()
}

/// Upserts `n` points (ids 0..n) from `data` in requests of 5 000.
pub fn fill(
    c: &Collections,
    name: &str,
    data: &mut Clusters,
    n: u64,
) -> Vec<(PointId, Vec<f32>, Payload)> {
    let mut all = Vec::with_capacity(n as usize);
    let mut batch = Vec::new();
    for i in 0..n {
        let (v, cluster) = data.sample();
        let p = payload_for(i, cluster);
        all.push((PointId::Num(i), v.clone(), p.clone()));
        batch.push(Point {
            id: PointId::Num(i),
            vector: v,
            payload: p,
        });
        if batch.len() == 5_000 {
            c.upsert(name, std::mem::take(&mut batch)).unwrap();
        }
    }
    if !batch.is_empty() {
        c.upsert(name, batch).unwrap();
    }
    // What the callers measure is the graph, not the exhaustive search of the
    // points still waiting for it.
    assert!(
        c.wait_indexed(name, std::time::Duration::from_secs(300))
            .unwrap(),
        "indexing {name} took over 5 minutes"
    );
    all
}

/// The exact top `k` in f64: cosine similarity, dot product or Euclidean
/// distance, over the points `keep` accepts; ties by id.
pub fn exact_top(
    distance: Distance,
    points: &[(PointId, Vec<f32>, Payload)],
    query: &[f32],
    k: usize,
    keep: impl Fn(&PointId, &Payload) -> bool,
) -> Vec<(PointId, f64)> {
    let norm = |v: &[f32]| v.iter().map(|x| *x as f64 * *x as f64).sum::<f64>().sqrt();
    let qn = norm(query);
    let mut scored: Vec<(PointId, f64)> = points
        .iter()
        .filter(|(id, _, p)| keep(id, p))
        .map(|(id, v, _)| {
            let dot: f64 = v
                .iter()
                .zip(query)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum();
            let s = match distance {
                Distance::Cosine => dot / (norm(v) * qn),
                Distance::Dot => dot,
                Distance::Euclid => v
                    .iter()
                    .zip(query)
                    .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                    .sum::<f64>()
                    .sqrt(),
            };
            (id.clone(), s)
        })
        .collect();
    scored.sort_by(|a, b| {
        let o = if distance == Distance::Euclid {
            a.1.total_cmp(&b.1)
        } else {
            b.1.total_cmp(&a.1)
        };
        o.then_with(|| a.0.cmp(&b.0))
    });
    scored.truncate(k);
    scored
}

/// Share of the reference ids found.
pub fn recall(found: &[PointId], truth: &[(PointId, f64)]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let hit = truth.iter().filter(|(id, _)| found.contains(id)).count();
    hit as f64 / truth.len() as f64
}
