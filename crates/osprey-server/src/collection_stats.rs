//! Recent search times per collection, for the dashboard's collections table.
//!
//! Each collection keeps its last [`KEEP`] search times; the table sums up those
//! of the last minute. Entries of collections that no longer exist are dropped
//! when the table is read, so the map stays bounded by the collection limit.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use osprey_collections::Collections;
use serde::Serialize;

/// Search times kept per collection.
const KEEP: usize = 4096;
/// The window the table sums up.
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct CollectionStats(Mutex<HashMap<String, VecDeque<(Instant, Duration)>>>);

/// One row of the dashboard's collections table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CollectionRow {
    pub name: String,
    pub points: u64,
    /// Searches in the last minute.
    pub searches: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl CollectionStats {
    pub fn record(&self, collection: &str, took: Duration) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let ring = match map.get_mut(collection) {
            Some(r) => r,
            None => map.entry(collection.to_string()).or_default(),
        };
        if ring.len() == KEEP {
            ring.pop_front();
        }
        ring.push_back((Instant::now(), took));
    }

    /// A row per collection, in name order.
    pub fn rows(&self, collections: &Collections) -> Vec<CollectionRow> {
        let names = collections.list();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|name, _| names.contains(name));
        let now = Instant::now();
        let mut rows: Vec<CollectionRow> = names
            .into_iter()
            .map(|name| {
                let mut recent: Vec<Duration> = map
                    .get(&name)
                    .into_iter()
                    .flatten()
                    .filter(|(at, _)| now.duration_since(*at) <= WINDOW)
                    .map(|(_, took)| *took)
                    .collect();
                recent.sort_unstable();
                let points = collections.info(&name).map_or(0, |i| i.points_count);
                CollectionRow {
                    points,
                    searches: recent.len(),
                    p50_ms: quantile_ms(&recent, 0.5),
                    p99_ms: quantile_ms(&recent, 0.99),
                    name,
                }
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }
}

/// The `q` quantile of sorted durations, in milliseconds (nearest rank).
fn quantile_ms(sorted: &[Duration], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let i = ((last as f64) * q).round() as usize;
    sorted
        .get(i.min(last))
        .map(|d| (d.as_secs_f64() * 1e6).round() / 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let ds: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&ds, 0.5), Some(51.0));
        assert_eq!(quantile_ms(&ds, 0.99), Some(99.0));
        assert_eq!(quantile_ms(&[], 0.5), None);
    }

    #[test]
    fn rows_list_only_live_collections() {
        let dir = tempfile::tempdir().unwrap();
        let cols = Collections::open(&osprey_collections::CollectionsConfig {
            path: dir.path().join("c"),
            ..Default::default()
        })
        .unwrap();
        cols.create(
            "a",
            osprey_collections::CollectionParams::new(4, osprey_collections::Distance::Dot),
        )
        .unwrap();
        let stats = CollectionStats::default();
        stats.record("a", Duration::from_micros(300));
        stats.record("gone", Duration::from_micros(300));
        let rows = stats.rows(&cols);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].name, "a");
        assert_eq!(rows[0].searches, 1);
        assert_eq!(rows[0].p50_ms, Some(0.3));
        assert_eq!(
            stats.0.lock().unwrap().len(),
            1,
            "the deleted collection's times are dropped"
        );
    }
}
