//! The HNSW graph (Malkov & Yashunin), laid out flat as hnswlib and FAISS lay
//! theirs: every vector back to back in one array, every node's bottom-layer
//! links in fixed-size blocks of another, both indexed by the node's number.
//! A search reaches a neighbour's vector with one multiplication, where a graph
//! of per-node allocations (usearch's) first loads the vector's address from a
//! table; on a 100k × 384 collection that extra dependent load per comparison
//! was a third of the walk (BENCHMARKS.md, "Where the walk's time goes").
//!
//! Concurrency: one linker at a time runs beside any number of searches, all
//! through `&self`. Everything else (placing vectors, removing, growing) takes
//! `&mut self`, which the collection's lock turns into exclusive access. So a
//! vector is written before any search can reach its node, and never changes
//! while one can. Links are atomics: a search reading a block being rewritten
//! sees old and new neighbours mixed, every one a valid node, which costs the
//! walk nothing but a detour.
//!
//! Removed nodes stay in the graph as hidden waypoints, as in hnswlib and
//! FAISS: their links still lead somewhere. Reusing one for a new vector would
//! leave its old neighbours' links pointing at a stranger (measured: recall@10
//! fell from 0.97 to 0.85 after a third of a graph was replaced that way), so
//! the collection rebuilds a graph whose hidden nodes outnumber its live ones.

mod file;
mod visited;

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::element::Element;
use crate::kernel;
use visited::Visited;

/// How distances are taken (the scores are the index's business).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Metric {
    /// One minus the dot product.
    Inner,
    /// The squared Euclidean distance.
    L2,
}

/// Entry point not set: the graph has no linked node.
const NO_ENTRY: u64 = u64::MAX;
/// The most links a block holds (2M on the bottom layer; `M` is at most 64).
const MAX_DEGREE: usize = 128;
/// Levels above this are never drawn (a level needs M^level nodes to occur).
const MAX_LEVEL: usize = 15;

/// The entry point's node and level from their packed form; `None` for
/// [`NO_ENTRY`].
fn unpack_entry(e: u64) -> Option<(u32, usize)> {
    (e != NO_ENTRY).then_some(((e >> 32) as u32, (e & 0xffff_ffff) as usize))
}

/// A node and its distance to whatever the walk compares against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Near {
    pub d: f32,
    pub node: u32,
}

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        self.d.total_cmp(&other.d).then(self.node.cmp(&other.node))
    }
}

pub(crate) struct Graph<T: Element> {
    dims: usize,
    metric: Metric,
    /// Links per node on the upper layers (`M`); twice that on the bottom one.
    m: usize,
    ef_construction: usize,
    /// Every node's vector, `dims` components each.
    vectors: Vec<T>,
    /// Per node, a block of `1 + 2M`: the count, then the bottom-layer links.
    links0: Vec<AtomicU32>,
    /// Per node, a block of `1 + M` for each layer above the bottom one.
    upper: Vec<Box<[AtomicU32]>>,
    keys: Vec<u64>,
    /// Walked through but never returned: removed, or placed and not yet linked.
    hidden: Vec<AtomicBool>,
    by_key: HashMap<u64, u32>,
    /// `node << 32 | level` of the entry point, or [`NO_ENTRY`].
    entry: AtomicU64,
    /// splitmix64 state for drawing levels.
    rng: u64,
    visited: Mutex<Vec<Visited>>,
    /// Linking assumes a single writer of links.
    linking: Mutex<()>,
}

impl<T: Element> Graph<T> {
    pub(crate) fn new(dims: usize, metric: Metric, m: usize, ef_construction: usize) -> Self {
        Self {
            dims,
            metric,
            m: m.clamp(2, MAX_DEGREE / 2),
            ef_construction: ef_construction.max(m),
            vectors: Vec::new(),
            links0: Vec::new(),
            upper: Vec::new(),
            keys: Vec::new(),
            hidden: Vec::new(),
            by_key: HashMap::new(),
            entry: AtomicU64::new(NO_ENTRY),
            rng: 0x9e37_79b9_7f4a_7c15,
            visited: Mutex::new(Vec::new()),
            linking: Mutex::new(()),
        }
    }

    /// Keys in the graph (placed, linked or not).
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Bytes held by vectors, links and bookkeeping.
    pub(crate) fn memory_usage(&self) -> usize {
        let upper: usize = self.upper.iter().map(|b| b.len() * 4 + 16).sum();
        self.vectors.capacity() * std::mem::size_of::<T>()
            + self.links0.capacity() * 4
            + upper
            + self.keys.capacity() * 9
            + self.by_key.capacity() * 16
    }

    /// Nodes of removed keys, still walked through.
    pub(crate) fn hidden_len(&self) -> usize {
        self.keys.len() - self.by_key.len()
    }

    /// Makes room for `additional` more nodes, so placing them does not move
    /// the arrays piecemeal.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.vectors.reserve(additional.saturating_mul(self.dims));
        self.links0
            .reserve(additional.saturating_mul(self.block0()));
        self.upper.reserve(additional);
        self.keys.reserve(additional);
        self.hidden.reserve(additional);
        self.by_key.reserve(additional);
    }

    fn block0(&self) -> usize {
        1 + 2 * self.m
    }

    fn vector(&self, node: u32) -> &[T] {
        let at = node as usize * self.dims;
        &self.vectors[at..at + self.dims]
    }

    fn distance(&self, a: &[T], b: &[T]) -> f32 {
        match self.metric {
            Metric::Inner => 1.0 - T::dot(a, b),
            Metric::L2 => T::l2_squared(a, b),
        }
    }

    fn is_hidden(&self, node: u32) -> bool {
        self.hidden[node as usize].load(Ordering::Acquire)
    }

    fn entry(&self) -> Option<(u32, usize)> {
        unpack_entry(self.entry.load(Ordering::Acquire))
    }

    fn set_entry(&self, node: u32, level: usize) {
        self.entry
            .store((u64::from(node) << 32) | level as u64, Ordering::Release);
    }

    fn level(&self, node: u32) -> usize {
        self.upper[node as usize].len() / (1 + self.m)
    }

    /// The link block of `node` on `layer`: the count, then the slots. Empty
    /// above the node's level.
    fn block(&self, node: u32, layer: usize) -> &[AtomicU32] {
        if layer == 0 {
            let at = node as usize * self.block0();
            &self.links0[at..at + self.block0()]
        } else {
            let width = 1 + self.m;
            self.upper[node as usize]
                .get((layer - 1) * width..layer * width)
                .unwrap_or(&[])
        }
    }

    fn neighbours(&self, node: u32, layer: usize) -> impl Iterator<Item = u32> + '_ {
        let block = self.block(node, layer);
        let count = block
            .first()
            .map_or(0, |c| c.load(Ordering::Acquire) as usize)
            .min(block.len().saturating_sub(1));
        block
            .iter()
            .skip(1)
            .take(count)
            .map(|n| n.load(Ordering::Relaxed))
    }

    /// A level drawn as HNSW draws them: `floor(-ln(U) / ln(M))`.
    fn draw_level(&mut self) -> usize {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // A uniform in (0, 1]: never ln(0).
        let u = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let level = -u.ln() / (self.m as f64).ln();
        (level as usize).min(MAX_LEVEL)
    }

    /// Writes the vectors of `items` (already in this type) into nodes, hidden
    /// until [`Graph::link`] links them. Returns the nodes, in order. A key
    /// already in the graph is an error (remove it first).
    pub(crate) fn place(&mut self, items: &[(u64, &[T])]) -> Result<Vec<u32>, String> {
        if self.by_key.is_empty() && !self.keys.is_empty() {
            // Everything was removed: start over rather than walk a graph of
            // hidden nodes to reach the new ones.
            *self = Self::new(self.dims, self.metric, self.m, self.ef_construction);
        }
        let mut nodes = Vec::with_capacity(items.len());
        for (key, v) in items {
            if v.len() != self.dims {
                return Err(format!(
                    "a vector of {} components, not {}",
                    v.len(),
                    self.dims
                ));
            }
            if self.by_key.contains_key(key) {
                return Err(format!("key {key} is already in the graph"));
            }
            let node = u32::try_from(self.keys.len())
                .ok()
                .filter(|n| *n < u32::MAX)
                .ok_or_else(|| "the graph is full (2³² nodes)".to_string())?;
            let level = self.draw_level();
            self.vectors.extend_from_slice(v);
            self.links0
                .extend((0..self.block0()).map(|_| AtomicU32::new(0)));
            self.upper.push(
                (0..level * (1 + self.m))
                    .map(|_| AtomicU32::new(0))
                    .collect(),
            );
            self.keys.push(*key);
            self.hidden.push(AtomicBool::new(true));
            self.by_key.insert(*key, node);
            nodes.push(node);
        }
        Ok(nodes)
    }

    /// A new graph of the live vectors of this one, in node order, placed and
    /// not linked: the start of a compaction.
    pub(crate) fn live_copy(&self) -> Result<(Self, Vec<u32>), String> {
        let mut g = Self::new(self.dims, self.metric, self.m, self.ef_construction);
        g.reserve(self.by_key.len());
        let mut live: Vec<(u64, u32)> = self.by_key.iter().map(|(k, n)| (*k, *n)).collect();
        live.sort_unstable_by_key(|(_, n)| *n);
        let items: Vec<(u64, &[T])> = live.iter().map(|(k, n)| (*k, self.vector(*n))).collect();
        let nodes = g.place(&items)?;
        Ok((g, nodes))
    }

    /// Hides the node of `key` from searches. False if the key is not in the
    /// graph.
    pub(crate) fn remove(&mut self, key: u64) -> bool {
        let Some(node) = self.by_key.remove(&key) else {
            return false;
        };
        self.hidden[node as usize].store(true, Ordering::Release);
        true
    }

    /// The stored vector of `key`.
    pub(crate) fn get(&self, key: u64) -> Option<&[T]> {
        self.by_key.get(&key).map(|n| self.vector(*n))
    }

    /// Links a node [`Graph::place`] wrote, then shows it to searches.
    pub(crate) fn link(&self, node: u32) {
        let _one = self.linking.lock().unwrap_or_else(|e| e.into_inner());
        if node as usize >= self.keys.len() {
            return;
        }
        let level = self.level(node);
        let q = self.vector(node);
        let Some((entry, top)) = self.entry() else {
            self.hidden[node as usize].store(false, Ordering::Release);
            self.set_entry(node, level);
            return;
        };
        let mut near = Near {
            d: self.distance(q, self.vector(entry)),
            node: entry,
        };
        for layer in (level + 1..=top).rev() {
            near = self.greedy(q, near, layer);
        }
        // Choose the neighbours on every layer first, top down, then write the
        // links bottom up: a walk that reaches the node on some layer then
        // finds its links on every layer below.
        let mut visited = self.take_visited();
        let mut chosen = Vec::with_capacity(level.min(top) + 1);
        for layer in (0..=level.min(top)).rev() {
            let found = self.search_layer(
                q,
                near,
                self.ef_construction,
                layer,
                |n| n != node && !self.is_hidden(n),
                &mut visited,
            );
            let picked = self.select(found, self.m);
            if let Some(first) = picked.first() {
                near = *first;
            }
            chosen.push((layer, picked));
        }
        for (layer, picked) in chosen.iter().rev() {
            let block = self.block(node, *layer);
            for (slot, c) in block.iter().skip(1).zip(picked) {
                slot.store(c.node, Ordering::Relaxed);
            }
            if let Some(count) = block.first() {
                count.store(picked.len().min(block.len() - 1) as u32, Ordering::Release);
            }
            for c in picked {
                self.link_back(c.node, node, c.d, *layer);
            }
        }
        self.give_back(visited);
        self.hidden[node as usize].store(false, Ordering::Release);
        if level > top {
            self.set_entry(node, level);
        }
    }

    /// Adds `to` to the links of `from` on `layer`; a full block keeps the
    /// neighbours the heuristic picks among the old ones and `to`.
    fn link_back(&self, from: u32, to: u32, d: f32, layer: usize) {
        let block = self.block(from, layer);
        let Some((count, slots)) = block.split_first() else {
            return;
        };
        let n = (count.load(Ordering::Relaxed) as usize).min(slots.len());
        if slots[..n].iter().any(|s| s.load(Ordering::Relaxed) == to) {
            return;
        }
        if n < slots.len() {
            slots[n].store(to, Ordering::Relaxed);
            count.store(n as u32 + 1, Ordering::Release);
            return;
        }
        let v = self.vector(from);
        let mut candidates: Vec<Near> = slots
            .iter()
            .map(|s| {
                let node = s.load(Ordering::Relaxed);
                Near {
                    d: self.distance(v, self.vector(node)),
                    node,
                }
            })
            .chain([Near { d, node: to }])
            .collect();
        candidates.sort_unstable();
        let chosen = self.select(candidates, slots.len());
        for (slot, c) in slots.iter().zip(&chosen) {
            slot.store(c.node, Ordering::Relaxed);
        }
        count.store(chosen.len() as u32, Ordering::Release);
    }

    /// HNSW's neighbour heuristic: from candidates sorted nearest first, keep
    /// one only if it is nearer to the new node than to every one kept, so
    /// links spread in all directions instead of into one cluster.
    fn select(&self, candidates: Vec<Near>, max: usize) -> Vec<Near> {
        if candidates.len() <= max {
            return candidates;
        }
        let mut kept: Vec<Near> = Vec::with_capacity(max);
        for c in candidates {
            if kept.len() >= max {
                break;
            }
            let v = self.vector(c.node);
            if kept
                .iter()
                .all(|k| self.distance(self.vector(k.node), v) >= c.d)
            {
                kept.push(c);
            }
        }
        kept
    }

    /// Moves to ever nearer neighbours on `layer` until none is nearer.
    fn greedy(&self, q: &[T], mut near: Near, layer: usize) -> Near {
        loop {
            let mut moved = false;
            for n in self.neighbours(near.node, layer) {
                let d = self.distance(q, self.vector(n));
                if d < near.d {
                    near = Near { d, node: n };
                    moved = true;
                }
            }
            if !moved {
                return near;
            }
        }
    }

    /// The best-first walk of one layer from `start`, keeping the `ef` nearest
    /// nodes that `accept` takes (the others are walked through). Nearest
    /// first.
    fn search_layer(
        &self,
        q: &[T],
        start: Near,
        ef: usize,
        layer: usize,
        accept: impl Fn(u32) -> bool,
        visited: &mut Visited,
    ) -> Vec<Near> {
        let ef = ef.max(1);
        visited.reset(self.keys.len());
        visited.insert(start.node);
        let mut candidates = BinaryHeap::new();
        let mut best: BinaryHeap<Near> = BinaryHeap::with_capacity(ef + 1);
        let mut bound = f32::INFINITY;
        if accept(start.node) {
            best.push(start);
            bound = start.d;
        }
        candidates.push(Reverse(start));
        while let Some(Reverse(c)) = candidates.pop() {
            if c.d > bound && best.len() >= ef {
                break;
            }
            // The new neighbours first, each one's vector asked for, then
            // their distances: the memory loads overlap (FAISS batches its
            // distances for the same reason).
            let mut fresh = [0u32; MAX_DEGREE];
            let mut k = 0;
            for n in self.neighbours(c.node, layer) {
                if k < fresh.len() && visited.insert(n) {
                    fresh[k] = n;
                    k += 1;
                    kernel::prefetch(self.vector(n));
                }
            }
            for &n in &fresh[..k] {
                let d = self.distance(q, self.vector(n));
                if best.len() < ef || d < bound {
                    let near = Near { d, node: n };
                    candidates.push(Reverse(near));
                    if accept(n) {
                        best.push(near);
                        if best.len() > ef {
                            best.pop();
                        }
                    }
                    if let Some(worst) = best.peek() {
                        bound = worst.d;
                    }
                }
            }
        }
        best.into_sorted_vec()
    }

    /// The `count` nearest keys that `filter` accepts, with their distances,
    /// nearest first, searching the bottom layer with `ef` candidates.
    pub(crate) fn search(
        &self,
        q: &[T],
        count: usize,
        ef: usize,
        filter: Option<&dyn Fn(u64) -> bool>,
    ) -> Vec<(u64, f32)> {
        let Some((entry, top)) = self.entry() else {
            return Vec::new();
        };
        if q.len() != self.dims {
            return Vec::new();
        }
        let mut near = Near {
            d: self.distance(q, self.vector(entry)),
            node: entry,
        };
        for layer in (1..=top).rev() {
            near = self.greedy(q, near, layer);
        }
        let mut visited = self.take_visited();
        let found = self.search_layer(
            q,
            near,
            ef.max(count),
            0,
            |n| !self.is_hidden(n) && filter.is_none_or(|f| f(self.keys[n as usize])),
            &mut visited,
        );
        self.give_back(visited);
        found
            .into_iter()
            .take(count)
            .map(|n| (self.keys[n.node as usize], n.d))
            .collect()
    }

    /// The `count` nearest keys by comparing the query with every vector.
    pub(crate) fn exact(&self, q: &[T], count: usize) -> Vec<(u64, f32)> {
        if count == 0 || q.len() != self.dims {
            return Vec::new();
        }
        let mut best: BinaryHeap<Near> = BinaryHeap::with_capacity(count + 1);
        for node in self.by_key.values() {
            let d = self.distance(q, self.vector(*node));
            if best.len() < count || best.peek().is_some_and(|w| d < w.d) {
                best.push(Near { d, node: *node });
                if best.len() > count {
                    best.pop();
                }
            }
        }
        best.into_sorted_vec()
            .into_iter()
            .map(|n| (self.keys[n.node as usize], n.d))
            .collect()
    }

    fn take_visited(&self) -> Visited {
        self.visited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    fn give_back(&self, v: Visited) {
        self.visited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(v);
    }
}

#[cfg(test)]
mod tests;
