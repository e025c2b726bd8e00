//! Vectors written to the store but not yet in the graph.
//!
//! A write is acknowledged once it is durable; its vectors wait here until the
//! indexer puts them into the graph. Searches compare the query with every
//! vector waiting here and merge the result with the graph's, so a point is
//! found from the moment its write returns. The vectors sit side by side in one
//! buffer so that comparing them all is a linear scan.

use std::collections::HashMap;

use crate::point::Distance;
use crate::score;

pub(crate) struct Backlog {
    dims: usize,
    /// Vectors are rounded to float16, as the graph of a float16 collection
    /// keeps them, so that a point scores the same before and after indexing.
    f16: bool,
    keys: Vec<u64>,
    data: Vec<f32>,
    at: HashMap<u64, usize>,
}

impl Backlog {
    pub(crate) fn new(dims: usize, f16: bool) -> Self {
        Self {
            dims,
            f16,
            keys: Vec::new(),
            data: Vec::new(),
            at: HashMap::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The bytes the vectors take.
    pub(crate) fn bytes(&self) -> usize {
        self.data.len() * size_of::<f32>()
    }

    pub(crate) fn contains(&self, key: u64) -> bool {
        self.at.contains_key(&key)
    }

    pub(crate) fn get(&self, key: u64) -> Option<&[f32]> {
        let i = *self.at.get(&key)?;
        self.data.get(i * self.dims..(i + 1) * self.dims)
    }

    /// Adds or replaces the vector of `key`.
    pub(crate) fn put(&mut self, key: u64, vector: &[f32]) {
        debug_assert_eq!(vector.len(), self.dims);
        let i = match self.at.get(&key) {
            Some(&i) => i,
            None => {
                self.at.insert(key, self.keys.len());
                self.keys.push(key);
                self.data.resize(self.data.len() + self.dims, 0.0);
                self.keys.len() - 1
            }
        };
        let slot = &mut self.data[i * self.dims..(i + 1) * self.dims];
        if self.f16 {
            for (x, v) in slot.iter_mut().zip(vector) {
                *x = half::f16::from_f32(*v).to_f32();
            }
        } else {
            slot.copy_from_slice(vector);
        }
    }

    /// Takes `key` out; false if it was not here.
    pub(crate) fn remove(&mut self, key: u64) -> bool {
        let Some(i) = self.at.remove(&key) else {
            return false;
        };
        let last = self.keys.len() - 1;
        if i != last {
            let moved = self.keys[last];
            self.keys.swap(i, last);
            let (head, tail) = self.data.split_at_mut(last * self.dims);
            head[i * self.dims..(i + 1) * self.dims].copy_from_slice(&tail[..self.dims]);
            self.at.insert(moved, i);
        }
        self.keys.pop();
        self.data.truncate(last * self.dims);
        true
    }

    /// Moves up to `n` vectors (the newest) into a backlog of their own.
    pub(crate) fn split_off(&mut self, n: usize) -> Backlog {
        let from = self.keys.len().saturating_sub(n);
        let keys = self.keys.split_off(from);
        let data = self.data.split_off(from * self.dims);
        for k in &keys {
            self.at.remove(k);
        }
        let at = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        Backlog {
            dims: self.dims,
            f16: self.f16,
            keys,
            data,
            at,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &[f32])> {
        self.keys
            .iter()
            .copied()
            .zip(self.data.chunks_exact(self.dims.max(1)))
    }

    /// Every vector's score for `query`, for the keys `keep` accepts.
    pub(crate) fn scores(
        &self,
        distance: Distance,
        query: &[f32],
        keep: impl Fn(u64) -> bool,
    ) -> Vec<(u64, f32)> {
        self.iter()
            .filter(|(k, _)| keep(*k))
            .map(|(k, v)| (k, score::score(distance, query, v)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_replaces_removes_and_splits() {
        let mut b = Backlog::new(2, false);
        b.put(1, &[1.0, 1.0]);
        b.put(2, &[2.0, 2.0]);
        b.put(3, &[3.0, 3.0]);
        b.put(2, &[2.5, 2.5]);
        assert_eq!(b.len(), 3);
        assert_eq!(b.get(2), Some(&[2.5, 2.5][..]));
        assert!(b.remove(1));
        assert!(!b.remove(1));
        // The last entry moved into the hole.
        assert_eq!(b.get(3), Some(&[3.0, 3.0][..]));
        assert_eq!(b.get(2), Some(&[2.5, 2.5][..]));
        assert_eq!(b.bytes(), 2 * 2 * 4);
        b.put(4, &[4.0, 4.0]);
        let taken = b.split_off(2);
        assert_eq!(taken.len(), 2);
        assert_eq!(b.len(), 1);
        for (k, v) in taken.iter() {
            assert_eq!(v[0], k as f32 + if k == 2 { 0.5 } else { 0.0 });
            assert!(!b.contains(k));
        }
        let all: Vec<u64> = b
            .iter()
            .map(|(k, _)| k)
            .chain(taken.iter().map(|(k, _)| k))
            .collect();
        assert_eq!(all.len(), 3);
        let s = taken.scores(Distance::Dot, &[1.0, 0.0], |k| k != 4);
        assert_eq!(s.len(), 1);
        assert!(s.iter().all(|(k, _)| *k != 4));
    }

    #[test]
    fn float16_backlogs_round() {
        let mut b = Backlog::new(1, true);
        b.put(1, &[0.1]);
        assert_eq!(b.get(1), Some(&[half::f16::from_f32(0.1).to_f32()][..]));
        assert_ne!(b.get(1), Some(&[0.1f32][..]));
    }
}
