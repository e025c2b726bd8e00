//! The graph against exact float64 search on clustered data, and through
//! removals, reuse, filters and a save and load.

use super::*;

/// `n` vectors of `dims` around 20 centres, normalized, and `q` queries from
/// the same centres (a seeded LCG: no dependency on a generator's stream).
fn clustered_with_queries(
    n: usize,
    q: usize,
    dims: usize,
    seed: u64,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut all = clustered(n + q, dims, seed);
    let queries = all.split_off(n);
    (all, queries)
}

fn clustered(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed;
    let mut uniform = move || {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) as f32 - 0.5
    };
    let centres: Vec<Vec<f32>> = (0..20)
        .map(|_| (0..dims).map(|_| uniform()).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % centres.len()];
            let v: Vec<f32> = c.iter().map(|x| x + 0.4 * uniform()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / norm).collect()
        })
        .collect()
}

/// The `k` best keys by float64 dot product among `live`.
fn truth(data: &[Vec<f32>], live: impl Iterator<Item = usize>, q: &[f32], k: usize) -> Vec<u64> {
    let mut scored: Vec<(f64, u64)> = live
        .map(|i| {
            let d: f64 = data[i]
                .iter()
                .zip(q)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            (d, i as u64)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(k).map(|(_, i)| i).collect()
}

fn recall(found: &[(u64, f32)], want: &[u64]) -> f64 {
    let hit = found.iter().filter(|(k, _)| want.contains(k)).count();
    hit as f64 / want.len() as f64
}

fn build(data: &[Vec<f32>]) -> Graph<f32> {
    let mut g = Graph::new(data[0].len(), Metric::Inner, 16, 128);
    let items: Vec<(u64, &[f32])> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_slice()))
        .collect();
    let placed = g.place(&items).unwrap();
    placed.iter().for_each(|n| g.link(*n));
    g
}

fn mean_recall(
    g: &Graph<f32>,
    data: &[Vec<f32>],
    queries: &[Vec<f32>],
    live: &dyn Fn(usize) -> bool,
) -> f64 {
    let total: f64 = queries
        .iter()
        .map(|q| {
            let want = truth(data, (0..data.len()).filter(|i| live(*i)), q, 10);
            recall(&g.search(q, 10, 64, None), &want)
        })
        .sum();
    total / queries.len() as f64
}

#[test]
fn finds_the_exact_neighbours_of_clustered_vectors() {
    let (data, queries) = clustered_with_queries(4000, 100, 48, 1);
    let g = build(&data);
    assert_eq!(g.len(), 4000);
    let r = mean_recall(&g, &data, &queries, &|_| true);
    assert!(r >= 0.95, "recall@10 {r}");
    // A point's own vector finds it first, with distance ~0.
    for i in (0..4000).step_by(97) {
        let hit = g.search(&data[i], 1, 64, None);
        assert_eq!(hit[0].0, i as u64);
        assert!(hit[0].1.abs() < 1e-5);
    }
    // Exact search agrees with the float64 truth.
    let q = &queries[0];
    let exact: Vec<u64> = g.exact(q, 10).into_iter().map(|(k, _)| k).collect();
    assert_eq!(exact, truth(&data, 0..4000, q, 10));
}

#[test]
fn removed_keys_are_walked_through_but_never_returned() {
    let (data, queries) = clustered_with_queries(3000, 50, 32, 3);
    let mut g = build(&data);
    for k in (0..3000u64).filter(|k| k % 3 == 0) {
        assert!(g.remove(k));
    }
    assert!(!g.remove(0), "already removed");
    assert_eq!(g.len(), 2000);
    for q in &queries {
        assert!(g.search(q, 10, 64, None).iter().all(|(k, _)| k % 3 != 0));
    }
    let r = mean_recall(&g, &data, &queries, &|i| i % 3 != 0);
    assert!(r >= 0.95, "recall@10 after removals {r}");

    assert_eq!(g.hidden_len(), 1000);
    // The removed points come back under new keys, as new nodes.
    let again: Vec<(u64, &[f32])> = (0..3000usize)
        .filter(|i| i % 3 == 0)
        .map(|i| (10_000 + i as u64, data[i].as_slice()))
        .collect();
    let placed = g.place(&again).unwrap();
    placed.iter().for_each(|n| g.link(*n));
    assert_eq!(g.hidden_len(), 1000);
    assert_eq!(g.len(), 3000);
    let total: f64 = queries
        .iter()
        .map(|q| {
            let want: Vec<u64> = truth(&data, 0..3000, q, 10)
                .into_iter()
                .map(|i| if i % 3 == 0 { 10_000 + i } else { i })
                .collect();
            recall(&g.search(q, 10, 64, None), &want)
        })
        .sum();
    let r = total / queries.len() as f64;
    assert!(r >= 0.95, "recall@10 after adding them back {r}");
    assert!(g.place(&again[..1]).is_err(), "a key already in the graph");
}

#[test]
fn a_filter_is_applied_during_the_walk() {
    let (data, queries) = clustered_with_queries(3000, 30, 32, 5);
    let g = build(&data);
    let even = |k: u64| k.is_multiple_of(2);
    for q in &queries {
        let found = g.search(q, 10, 64, Some(&even));
        assert_eq!(found.len(), 10);
        assert!(found.iter().all(|(k, _)| even(*k)));
        let want = truth(&data, (0..3000).filter(|i| i % 2 == 0), q, 10);
        assert!(recall(&found, &want) >= 0.8);
    }
}

#[test]
fn emptied_graphs_start_over_and_small_ones_work() {
    let data = clustered(5, 8, 7);
    let mut g = build(&data[..1]);
    assert_eq!(g.search(&data[0], 3, 8, None).len(), 1);
    assert!(g.remove(0));
    assert!(g.search(&data[0], 3, 8, None).is_empty());
    let items: Vec<(u64, &[f32])> = data
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64 + 1, v.as_slice()))
        .collect();
    let placed = g.place(&items).unwrap();
    placed.iter().for_each(|n| g.link(*n));
    let found = g.search(&data[2], 5, 8, None);
    assert_eq!(found.len(), 5);
    assert_eq!(found[0].0, 3);
    let empty: Graph<f32> = Graph::new(8, Metric::L2, 16, 64);
    assert!(empty.search(&data[0], 3, 8, None).is_empty());
    assert!(empty.exact(&data[0], 3).is_empty());
}

#[test]
fn a_saved_graph_loads_as_it_was_and_a_damaged_one_is_refused() {
    let data = clustered(1500, 24, 8);
    let mut g = build(&data);
    g.remove(7);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g");
    g.save(&path).unwrap();
    let back: Graph<f32> = Graph::load(&path, 24, Metric::Inner, 16).unwrap();
    assert_eq!(back.len(), g.len());
    for q in data.iter().step_by(50) {
        assert_eq!(back.search(q, 10, 64, None), g.search(q, 10, 64, None));
    }
    assert!(back.get(7).is_none());
    assert_eq!(back.get(8), Some(data[8].as_slice()));

    assert!(
        Graph::<f32>::load(&path, 25, Metric::Inner, 16).is_err(),
        "size"
    );
    assert!(
        Graph::<f32>::load(&path, 24, Metric::L2, 16).is_err(),
        "metric"
    );
    assert!(
        Graph::<half::f16>::load(&path, 24, Metric::Inner, 16).is_err(),
        "type"
    );
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    assert!(
        Graph::<f32>::load(&path, 24, Metric::Inner, 16).is_err(),
        "short"
    );
    // A link past the last node.
    let mut bad = bytes.clone();
    let links_at = (file::HEADER + 1500 * file::NODE_HEAD) as usize;
    bad[links_at + 4..links_at + 8].copy_from_slice(&5000u32.to_le_bytes());
    std::fs::write(&path, &bad).unwrap();
    assert!(
        Graph::<f32>::load(&path, 24, Metric::Inner, 16).is_err(),
        "link"
    );
}

#[test]
fn searches_run_while_a_batch_is_linked() {
    let data = clustered(3000, 32, 9);
    let mut g = build(&data[..1000]);
    let items: Vec<(u64, &[f32])> = data[1000..]
        .iter()
        .enumerate()
        .map(|(i, v)| (1000 + i as u64, v.as_slice()))
        .collect();
    let placed = g.place(&items).unwrap();
    let g = &g;
    std::thread::scope(|s| {
        s.spawn(|| placed.iter().for_each(|n| g.link(*n)));
        for _ in 0..4 {
            s.spawn(|| {
                for q in data.iter().step_by(7) {
                    let found = g.search(q, 10, 32, None);
                    assert!(!found.is_empty());
                    assert!(found.windows(2).all(|w| w[0].1 <= w[1].1));
                }
            });
        }
    });
    for i in (0..3000).step_by(37) {
        assert_eq!(g.search(&data[i], 1, 64, None)[0].0, i as u64, "point {i}");
    }
}
