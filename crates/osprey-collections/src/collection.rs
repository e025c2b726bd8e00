//! One collection: its store on disk and, in memory, the graph (which holds the
//! vectors), the payloads and the id map.
//!
//! Reads share a read lock and run in parallel. Writes are serialized by a
//! writer mutex: each commits to the store first (durable), then applies the
//! change in memory, so readers never see a write that is not on disk. The write
//! lock is held only to change ids and payloads and to remove vectors; new
//! vectors enter the graph under the read lock (usearch inserts concurrently
//! with searches), so a large upsert does not stall searches.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use crate::error::{CollectionError, Result};
use crate::filter::{Compiled, Filter};
use crate::index::{Codes, DEFAULT_EF, VectorIndex, int8_scale};
use crate::point::{
    CollectionInfo, CollectionParams, Distance, Payload, Point, PointId, QuantizationSearch,
    Record, ScoredPoint, SearchRequest, Selector, UpdateResult,
};
use crate::score;
use crate::snapshot;
use crate::store::{Store, StoredPoint, Write};

/// Below this many points every filtered search is exact: scanning is cheap and
/// always right.
const SMALL_COLLECTION: usize = 5_000;
/// A filter estimated to match fewer points than this, or fewer than
/// [`SELECTIVE_FRACTION`] of them, is searched exactly over the matching points:
/// a graph walk would have to visit most of the graph to find enough of them.
const SELECTIVE_POINTS: usize = 3_000;
const SELECTIVE_FRACTION: f64 = 0.02;
/// Points tested to estimate how many a filter matches.
const SAMPLE: usize = 1_024;
/// The largest search breadth a request may ask for.
const MAX_EF: usize = 4_096;
/// Points inserted into the graph per batch while rebuilding.
const REBUILD_BATCH: usize = 8_192;

/// The request limits that apply inside a collection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub max_points_per_request: usize,
    pub max_payload_bytes: usize,
}

pub(crate) struct Collection {
    name: String,
    dir: PathBuf,
    params: CollectionParams,
    limits: Limits,
    store: Store,
    state: RwLock<State>,
    writer: Mutex<()>,
    deleted: AtomicBool,
    /// The operation the snapshot on disk reflects (0 for none).
    snapshot_op: AtomicU64,
}

struct Slot {
    id: PointId,
    version: u64,
    payload: Payload,
}

struct State {
    /// Graph key → point; a key is the slot's position.
    slots: Vec<Option<Slot>>,
    free: Vec<u64>,
    by_id: BTreeMap<PointId, u64>,
    index: VectorIndex,
    op: u64,
}

impl Collection {
    /// Opens the collection in `dir`: reads the store and loads the graph from
    /// its snapshot when that matches the store, else rebuilds it.
    pub(crate) fn open(dir: &Path, limits: Limits) -> Result<Self> {
        let (store, header, op) = Store::open(dir)?;
        snapshot::remove_partial(dir);
        let params = header.params;
        let codes = Codes::of(&params, store.scale()?);
        let started = Instant::now();
        let (state, snapshot_op) = match load_with_snapshot(&store, dir, op, &params, codes)? {
            Some((state, snapshot_op)) => (state, Some(snapshot_op)),
            None => (rebuild(&store, op, &params)?, None),
        };
        let from_snapshot = snapshot_op.is_some();
        let points = state.by_id.len();
        tracing::info!(
            collection = %header.name,
            points,
            from_snapshot,
            elapsed_ms = started.elapsed().as_millis() as u64,
            index_bytes = state.index.memory_usage(),
            "collection opened"
        );
        if !from_snapshot {
            snapshot::remove(dir);
        }
        Ok(Self {
            name: header.name,
            dir: dir.to_path_buf(),
            params,
            limits,
            store,
            state: RwLock::new(state),
            writer: Mutex::new(()),
            deleted: AtomicBool::new(false),
            snapshot_op: AtomicU64::new(snapshot_op.unwrap_or(0)),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn params(&self) -> &CollectionParams {
        &self.params
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the writer lock; fails if the collection was deleted meanwhile.
    fn writer(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        let guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if self.deleted.load(AtomicOrdering::Acquire) {
            return Err(CollectionError::NotFound(self.name.clone()));
        }
        Ok(guard)
    }

    /// Marks the collection deleted once in-flight writes are done; later writes
    /// fail with NotFound.
    pub(crate) fn mark_deleted(&self) {
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.deleted.store(true, AtomicOrdering::Release);
    }

    pub(crate) fn info(&self) -> CollectionInfo {
        let st = self.read();
        CollectionInfo {
            params: self.params.clone(),
            points_count: st.by_id.len() as u64,
            indexed_vectors_count: st.index.len() as u64,
            segments_count: 1,
        }
    }

    /// Checks a vector from a client and prepares it (Cosine: normalized).
    fn prepare_vector(&self, v: &mut [f32]) -> Result<()> {
        if v.len() != self.params.size {
            return Err(CollectionError::WrongVectorSize {
                expected: self.params.size,
                got: v.len(),
            });
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(CollectionError::NonFinite);
        }
        if self.params.distance == Distance::Cosine {
            score::normalize(v);
        }
        Ok(())
    }

    fn check_count(&self, got: usize) -> Result<()> {
        let max = self.limits.max_points_per_request;
        if got > max {
            return Err(CollectionError::TooManyPoints { max, got });
        }
        Ok(())
    }

    pub(crate) fn upsert(&self, points: Vec<Point>) -> Result<UpdateResult> {
        self.check_count(points.len())?;
        // Last occurrence of an id wins, as in Qdrant.
        let mut last: HashMap<&PointId, usize> = HashMap::with_capacity(points.len());
        for (i, p) in points.iter().enumerate() {
            last.insert(&p.id, i);
        }
        let keep: HashSet<usize> = last.into_values().collect();
        let mut prepared: Vec<(Point, Vec<u8>)> = Vec::with_capacity(keep.len());
        for (i, mut p) in points.into_iter().enumerate() {
            if !keep.contains(&i) {
                continue;
            }
            self.prepare_vector(&mut p.vector)?;
            let json = serde_json::to_vec(&p.payload)
                .map_err(|e| CollectionError::BadRequest(format!("payload: {e}")))?;
            if json.len() > self.limits.max_payload_bytes {
                return Err(CollectionError::PayloadTooLarge {
                    max: self.limits.max_payload_bytes,
                    got: json.len(),
                });
            }
            prepared.push((p, json));
        }
        let _w = self.writer()?;
        if prepared.is_empty() {
            return Ok(UpdateResult {
                operation_id: self.read().op,
            });
        }
        // The first write to an int8 collection fixes its scale, in the same
        // transaction as the points.
        let scale = match self.params.int8_quantile() {
            Some(quantile) if self.read().index.needs_scale() => Some(int8_scale(
                prepared.iter().map(|(p, _)| p.vector.as_slice()),
                quantile,
            )),
            _ => None,
        };
        let writes: Vec<Write<'_>> = prepared
            .iter()
            .map(|(p, json)| Write {
                id: &p.id,
                vector: &p.vector,
                payload_json: json,
            })
            .collect();
        let op = self.store.write(&writes, &[], scale)?;
        drop(writes);
        if let Some(scale) = scale {
            self.write().index.set_scale(scale);
        }
        // Ids and payloads change under the write lock (with room made in the
        // graph); the vectors go into the graph under the read lock, so searches
        // go on while a large batch is inserted.
        let staged = self
            .write()
            .stage_upserts(prepared.into_iter().map(|(p, _)| p), op);
        let applied = staged.and_then(|adds| {
            let items: Vec<(u64, &[f32])> = adds.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            self.read().index.add_batch(&items)
        });
        let mut st = self.write();
        if applied.is_ok() {
            st.op = op;
        }
        self.settle(&mut st, applied, op)
    }

    pub(crate) fn delete_points(&self, selector: &Selector) -> Result<UpdateResult> {
        let compiled = match selector {
            Selector::Ids(ids) => {
                self.check_count(ids.len())?;
                None
            }
            Selector::Filter(f) => Some(Compiled::new(f)?),
        };
        let _w = self.writer()?;
        let ids: Vec<PointId> = {
            let st = self.read();
            match (selector, &compiled) {
                (Selector::Ids(ids), _) => {
                    let mut seen = HashSet::new();
                    ids.iter()
                        .filter(|id| st.by_id.contains_key(*id) && seen.insert(*id))
                        .cloned()
                        .collect()
                }
                (Selector::Filter(_), Some(f)) => st
                    .live()
                    .filter(|(_, s)| f.matches(&s.id, &s.payload))
                    .map(|(_, s)| s.id.clone())
                    .collect(),
                (Selector::Filter(_), None) => Vec::new(),
            }
        };
        if ids.is_empty() {
            return Ok(UpdateResult {
                operation_id: self.read().op,
            });
        }
        let op = self.store.write(&[], &ids, None)?;
        let mut st = self.write();
        let applied = st.apply_deletes(&ids, op);
        self.settle(&mut st, applied, op)
    }

    /// After a committed write: if applying it in memory failed, the memory is
    /// rebuilt from the store (which has the write), so the two never disagree.
    fn settle(&self, st: &mut State, applied: Result<()>, op: u64) -> Result<UpdateResult> {
        match applied {
            Ok(()) => Ok(UpdateResult { operation_id: op }),
            Err(e) => {
                tracing::error!(collection = %self.name, error = %e, "applying a committed write failed; rebuilding the index");
                *st = rebuild(&self.store, op, &self.params)?;
                Ok(UpdateResult { operation_id: op })
            }
        }
    }

    pub(crate) fn search(&self, req: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        if req.limit == 0 {
            return Err(CollectionError::BadRequest(
                "limit must be at least 1".into(),
            ));
        }
        if req.score_threshold.is_some_and(|t| t.is_nan()) {
            return Err(CollectionError::BadRequest(
                "score_threshold is not a number".into(),
            ));
        }
        let mut query = req.vector.clone();
        self.prepare_vector(&mut query)?;
        let filter = compile(req.filter.as_ref())?;
        let wanted = req.limit.saturating_add(req.offset);
        let ef = req.ef.unwrap_or(DEFAULT_EF).max(1);
        let distance = self.params.distance;
        let st = self.read();
        let n = st.by_id.len();
        if n == 0 || req.offset >= n {
            return Ok(Vec::new());
        }
        let wanted = wanted.min(n);
        // A breadth beyond the collection's size changes nothing, and past
        // MAX_EF a walk costs more than it gains.
        let ef = ef.min(n).min(MAX_EF);
        let int8 = st.index.is_int8();
        // An int8 graph's candidates are rescored, so more of them are fetched.
        let fetch = if int8 {
            oversampled(wanted, ef, req.quantization).min(n)
        } else {
            wanted
        };
        let hits = if req.exact {
            st.exact(distance, &query, fetch, filter.as_ref())?
        } else if let Some(f) = &filter {
            if st.selective(f) {
                st.exact(distance, &query, fetch, Some(f))?
            } else {
                let pred = |key: u64| st.slot(key).is_some_and(|s| f.matches(&s.id, &s.payload));
                let hits = st.index.search(&query, fetch, ef, Some(&pred))?;
                if hits.len() < wanted {
                    // The walk found too few: the matches are few or cut off.
                    st.exact(distance, &query, fetch, Some(f))?
                } else {
                    hits
                }
            }
        } else {
            let hits = st.index.search(&query, fetch, ef, None)?;
            if hits.len() < wanted {
                st.exact(distance, &query, fetch, None)?
            } else {
                hits
            }
        };
        let hits = if int8 {
            self.rescore(&st, &query, hits, wanted, req.quantization)?
        } else {
            hits
        };
        let mut out = Vec::with_capacity(hits.len());
        let mut buf = vec![0.0f32; self.params.size];
        for (key, score) in hits.into_iter().skip(req.offset) {
            if let Some(t) = req.score_threshold
                && !score::passes(distance, score, t)
            {
                break;
            }
            let Some(slot) = st.slot(key) else { continue };
            out.push(ScoredPoint {
                id: slot.id.clone(),
                version: slot.version,
                score,
                payload: req.with_payload.then(|| slot.payload.clone()),
                vector: if req.with_vector && !int8 && st.index.get(key, &mut buf) {
                    Some(buf.clone())
                } else {
                    None
                },
            });
        }
        if int8 && req.with_vector {
            let originals = self.store.vectors(out.iter().map(|p| &p.id))?;
            for (p, v) in out.iter_mut().zip(originals) {
                p.vector = v;
            }
        }
        Ok(out)
    }

    /// Orders an int8 graph's candidates by their scores against the original
    /// vectors from the store (or, without rescoring, by the graph's estimates)
    /// and keeps the `wanted` best.
    fn rescore(
        &self,
        st: &State,
        query: &[f32],
        hits: Vec<(u64, f32)>,
        wanted: usize,
        q: QuantizationSearch,
    ) -> Result<Vec<(u64, f32)>> {
        let distance = self.params.distance;
        let mut hits = if q.rescore || q.ignore {
            let live: Vec<(u64, &PointId)> = hits
                .iter()
                .filter_map(|(k, _)| st.slot(*k).map(|s| (*k, &s.id)))
                .collect();
            let originals = self.store.vectors(live.iter().map(|(_, id)| *id))?;
            live.iter()
                .zip(originals)
                .filter_map(|((k, _), v)| Some((*k, score::score(distance, query, &v?))))
                .collect()
        } else {
            hits
        };
        hits.sort_by(|a, b| score::rank(distance, a.1, b.1).then(a.0.cmp(&b.0)));
        hits.truncate(wanted);
        Ok(hits)
    }

    /// Fills the vectors of records from the store when the graph holds int8
    /// codes (the originals are wanted, not the codes).
    fn originals(&self, records: &mut [Record], with_vector: bool) -> Result<()> {
        if !with_vector || self.params.quantization.is_none() {
            return Ok(());
        }
        let vectors = self.store.vectors(records.iter().map(|r| &r.id))?;
        for (r, v) in records.iter_mut().zip(vectors) {
            r.vector = v;
        }
        Ok(())
    }

    pub(crate) fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        let filter = compile(filter)?;
        let st = self.read();
        Ok(match filter {
            None => st.by_id.len() as u64,
            Some(f) => st
                .live()
                .filter(|(_, s)| f.matches(&s.id, &s.payload))
                .count() as u64,
        })
    }

    pub(crate) fn retrieve(
        &self,
        ids: &[PointId],
        with_payload: bool,
        with_vector: bool,
    ) -> Result<Vec<Record>> {
        self.check_count(ids.len())?;
        let mut records: Vec<Record> = {
            let st = self.read();
            let mut seen = HashSet::new();
            let mut buf = vec![0.0f32; self.params.size];
            ids.iter()
                .filter(|id| seen.insert(*id))
                .filter_map(|id| {
                    let key = *st.by_id.get(id)?;
                    st.record(key, with_payload, with_vector, &mut buf)
                })
                .collect()
        };
        self.originals(&mut records, with_vector)?;
        Ok(records)
    }

    pub(crate) fn scroll(
        &self,
        filter: Option<&Filter>,
        limit: usize,
        offset: Option<&PointId>,
        with_payload: bool,
        with_vector: bool,
    ) -> Result<(Vec<Record>, Option<PointId>)> {
        if limit == 0 {
            return Err(CollectionError::BadRequest(
                "limit must be at least 1".into(),
            ));
        }
        // A larger page is cut to the request limit; the next page offset lets
        // the client go on, so nothing is lost.
        let limit = limit.min(self.limits.max_points_per_request.max(1));
        let filter = compile(filter)?;
        let st = self.read();
        let start = match offset {
            Some(id) => std::ops::Bound::Included(id),
            None => std::ops::Bound::Unbounded,
        };
        let mut buf = vec![0.0f32; self.params.size];
        let mut page = Vec::with_capacity(limit.min(1024));
        let mut matching = st
            .by_id
            .range::<PointId, _>((start, std::ops::Bound::Unbounded))
            .filter(|(_, key)| {
                filter
                    .as_ref()
                    .is_none_or(|f| st.slot(**key).is_some_and(|s| f.matches(&s.id, &s.payload)))
            });
        for (_, key) in matching.by_ref().take(limit) {
            if let Some(r) = st.record(*key, with_payload, with_vector, &mut buf) {
                page.push(r);
            }
        }
        let next = matching.next().map(|(id, _)| id.clone());
        drop(st);
        self.originals(&mut page, with_vector)?;
        Ok((page, next))
    }

    /// Saves a graph snapshot if the graph changed since the last one.
    pub(crate) fn flush(&self) -> Result<()> {
        // No write may be half applied while the graph is saved.
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if self.deleted.load(AtomicOrdering::Acquire) {
            return Ok(());
        }
        let st = self.read();
        if st.op == 0 || self.snapshot_op.load(AtomicOrdering::Acquire) == st.op {
            return Ok(());
        }
        let started = Instant::now();
        snapshot::save(
            &self.dir,
            st.op,
            &st.index,
            st.live().map(|(key, s)| (key, s.id.clone())),
        )?;
        self.snapshot_op.store(st.op, AtomicOrdering::Release);
        tracing::info!(
            collection = %self.name,
            points = st.by_id.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "index snapshot saved"
        );
        Ok(())
    }
}

fn compile(filter: Option<&Filter>) -> Result<Option<Compiled>> {
    Ok(match filter {
        Some(f) => Some(Compiled::new(f)?).filter(|c| !c.is_empty()),
        None => None,
    })
}

impl State {
    fn empty(params: &CollectionParams, codes: Codes, op: u64, capacity: usize) -> Result<Self> {
        Ok(Self {
            slots: Vec::with_capacity(capacity),
            free: Vec::new(),
            by_id: BTreeMap::new(),
            index: VectorIndex::new(params.size, params.distance, codes, capacity)?,
            op,
        })
    }

    fn slot(&self, key: u64) -> Option<&Slot> {
        self.slots.get(usize::try_from(key).ok()?)?.as_ref()
    }

    fn live(&self) -> impl Iterator<Item = (u64, &Slot)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as u64, s)))
    }

    fn record(
        &self,
        key: u64,
        with_payload: bool,
        with_vector: bool,
        buf: &mut [f32],
    ) -> Option<Record> {
        let slot = self.slot(key)?;
        Some(Record {
            id: slot.id.clone(),
            payload: with_payload.then(|| slot.payload.clone()),
            // An int8 graph's vectors come from the store (see `originals`).
            vector: (with_vector && !self.index.is_int8() && self.index.get(key, buf))
                .then(|| buf.to_vec()),
        })
    }

    fn allocate(&mut self) -> u64 {
        match self.free.pop() {
            Some(k) => k,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u64
            }
        }
    }

    /// Records upserted points (ids, payloads, versions), takes their old
    /// vectors out of the graph and makes room for the new ones, which it
    /// returns with their keys for [`VectorIndex::add_batch`].
    fn stage_upserts(
        &mut self,
        points: impl Iterator<Item = Point>,
        op: u64,
    ) -> Result<Vec<(u64, Vec<f32>)>> {
        let mut adds: Vec<(u64, Vec<f32>)> = Vec::new();
        for p in points {
            let key = match self.by_id.get(&p.id) {
                Some(&k) => {
                    self.index.remove(k)?;
                    k
                }
                None => {
                    let k = self.allocate();
                    self.by_id.insert(p.id.clone(), k);
                    k
                }
            };
            if let Some(s) = self.slots.get_mut(key as usize) {
                *s = Some(Slot {
                    id: p.id,
                    version: op,
                    payload: p.payload,
                });
            }
            adds.push((key, p.vector));
        }
        self.index.reserve(adds.len())?;
        Ok(adds)
    }

    fn apply_deletes(&mut self, ids: &[PointId], op: u64) -> Result<()> {
        self.op = op;
        for id in ids {
            if let Some(key) = self.by_id.remove(id) {
                self.index.remove(key)?;
                if let Some(s) = self.slots.get_mut(key as usize) {
                    *s = None;
                }
                self.free.push(key);
            }
        }
        Ok(())
    }

    /// Whether a filter matches so few points that exact search over them beats
    /// a graph walk. Small collections are always searched exactly.
    fn selective(&self, f: &Compiled) -> bool {
        let n = self.by_id.len();
        if n <= SMALL_COLLECTION {
            return true;
        }
        // An evenly spaced sample of the slots.
        let step = (self.slots.len() / SAMPLE).max(1);
        let (mut tested, mut hit) = (0usize, 0usize);
        for s in self.slots.iter().step_by(step).flatten() {
            tested += 1;
            if f.matches(&s.id, &s.payload) {
                hit += 1;
            }
        }
        if tested == 0 {
            return true;
        }
        let fraction = hit as f64 / tested as f64;
        fraction < SELECTIVE_FRACTION || fraction * (n as f64) < SELECTIVE_POINTS as f64
    }

    /// Compares the query with every (matching) point: the `wanted` best, best
    /// first (ties by id when filtered).
    fn exact(
        &self,
        distance: Distance,
        query: &[f32],
        wanted: usize,
        filter: Option<&Compiled>,
    ) -> Result<Vec<(u64, f32)>> {
        let Some(filter) = filter else {
            // usearch's brute force: SIMD, no copies.
            return self.index.exact(query, wanted);
        };
        let mut buf = vec![0.0f32; query.len()];
        let mut heap: BinaryHeap<Ranked<'_>> = BinaryHeap::with_capacity(wanted + 1);
        for (key, s) in self.live() {
            if !filter.matches(&s.id, &s.payload) {
                continue;
            }
            if !self.index.get(key, &mut buf) {
                continue;
            }
            let score = score::score(distance, query, &buf);
            let r = Ranked {
                key,
                score,
                id: &s.id,
                distance,
            };
            if heap.len() < wanted {
                heap.push(r);
            } else if heap
                .peek()
                .is_some_and(|worst| r.cmp(worst) == Ordering::Less)
            {
                heap.pop();
                heap.push(r);
            }
        }
        Ok(heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| (r.key, r.score))
            .collect())
    }
}

/// How many candidates an int8 search fetches for `wanted` results: all the
/// walk's when quantization is ignored, else `wanted` × the oversampling.
fn oversampled(wanted: usize, ef: usize, q: QuantizationSearch) -> usize {
    if q.ignore {
        return wanted.max(ef);
    }
    let factor = if q.oversampling.is_finite() {
        q.oversampling.clamp(1.0, 64.0)
    } else {
        1.0
    };
    ((wanted as f32 * factor).ceil() as usize)
        .min(MAX_EF)
        .max(wanted)
}

/// A candidate of exact search, ordered best first (the heap keeps the worst on
/// top).
struct Ranked<'a> {
    key: u64,
    score: f32,
    id: &'a PointId,
    distance: Distance,
}

impl Ord for Ranked<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        score::rank(self.distance, self.score, other.score).then_with(|| self.id.cmp(other.id))
    }
}

impl PartialOrd for Ranked<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked<'_> {}

/// Builds the in-memory state from the snapshot, if there is one that fits the
/// store, then replays the writes made after it: points written since are
/// re-inserted, points gone since are removed. `Ok(None)` means rebuild.
fn load_with_snapshot(
    store: &Store,
    dir: &Path,
    op: u64,
    params: &CollectionParams,
    codes: Codes,
) -> Result<Option<(State, u64)>> {
    let loaded = match snapshot::load(dir, op, params.size, params.distance, codes) {
        Ok(Some(l)) => l,
        Ok(None) => return Ok(None),
        Err(e) => {
            tracing::warn!(error = %e, "reading the index snapshot failed; rebuilding");
            return Ok(None);
        }
    };
    let snapshot_op = loaded.op;
    let mut keys = loaded.keys;
    let mut index = loaded.index;
    let max_key = keys.values().copied().max().map_or(0, |k| k + 1);
    let Ok(max_key) = usize::try_from(max_key) else {
        return Ok(None);
    };
    if keys.len() != index.len() || max_key > keys.len().saturating_mul(4).max(1 << 20) {
        return Ok(None);
    }
    let mut slots: Vec<Option<Slot>> = Vec::new();
    slots.resize_with(max_key, || None);
    let mut by_id = BTreeMap::new();
    // Points written after the snapshot: (key in the graph if it has one, vector).
    let mut changed: Vec<(Option<u64>, StoredPoint)> = Vec::new();
    let mut fits = true;
    store.for_each(|p| {
        let known = keys.remove(&p.id);
        if p.version > snapshot_op {
            if p.vector.len() != params.size {
                fits = false;
            }
            changed.push((known, p));
            return Ok(());
        }
        // Unchanged since the snapshot: it must be in it.
        match known.and_then(|k| slots.get_mut(k as usize).map(|s| (k, s))) {
            Some((k, s)) => {
                by_id.insert(p.id.clone(), k);
                *s = Some(Slot {
                    id: p.id,
                    version: p.version,
                    payload: p.payload,
                });
            }
            None => fits = false,
        }
        Ok(())
    })?;
    if !fits {
        tracing::warn!("index snapshot does not match the stored points; rebuilding");
        return Ok(None);
    }
    let (replayed, removed) = (changed.len(), keys.len());
    // Deleted since the snapshot.
    for (_, k) in keys {
        index.remove(k)?;
    }
    // Keys of rewritten points stay theirs; the other empty slots are free.
    let rewritten: HashSet<u64> = changed.iter().filter_map(|c| c.0).collect();
    let free = slots
        .iter()
        .enumerate()
        .filter(|(i, s)| s.is_none() && !rewritten.contains(&(*i as u64)))
        .map(|(i, _)| i as u64)
        .collect();
    let mut st = State {
        slots,
        free,
        by_id,
        index,
        op,
    };
    let mut adds: Vec<(u64, Vec<f32>)> = Vec::with_capacity(changed.len());
    for (known, p) in changed {
        let key = match known {
            Some(k) => {
                st.index.remove(k)?;
                k
            }
            None => st.allocate(),
        };
        st.by_id.insert(p.id.clone(), key);
        if let Some(s) = st.slots.get_mut(key as usize) {
            *s = Some(Slot {
                id: p.id,
                version: p.version,
                payload: p.payload,
            });
        }
        adds.push((key, p.vector));
    }
    let items: Vec<(u64, &[f32])> = adds.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    st.index.reserve(items.len())?;
    st.index.add_batch(&items)?;
    if replayed + removed > 0 {
        tracing::info!(
            snapshot_op,
            store_op = op,
            replayed,
            removed,
            "replayed the writes made after the index snapshot"
        );
    }
    Ok(Some((st, snapshot_op)))
}

/// Builds the in-memory state and the graph from the store.
fn rebuild(store: &Store, op: u64, params: &CollectionParams) -> Result<State> {
    let n = usize::try_from(store.len()?).unwrap_or(usize::MAX);
    let mut st = State::empty(params, Codes::of(params, store.scale()?), op, n)?;
    let mut batch: Vec<(u64, Vec<f32>)> = Vec::with_capacity(REBUILD_BATCH.min(n));
    let flush = |st: &mut State, batch: &mut Vec<(u64, Vec<f32>)>| -> Result<()> {
        let items: Vec<(u64, &[f32])> = batch.iter().map(|(k, v)| (*k, v.as_slice())).collect();
        st.index.reserve(items.len())?;
        st.index.add_batch(&items)?;
        batch.clear();
        Ok(())
    };
    store.for_each(|p| {
        if p.vector.len() != params.size {
            return Err(CollectionError::Storage(format!(
                "point {} has a vector of size {} in a collection of size {}",
                p.id,
                p.vector.len(),
                params.size
            )));
        }
        let key = st.slots.len() as u64;
        st.by_id.insert(p.id.clone(), key);
        st.slots.push(Some(Slot {
            id: p.id,
            version: p.version,
            payload: p.payload,
        }));
        batch.push((key, p.vector));
        if batch.len() >= REBUILD_BATCH {
            flush(&mut st, &mut batch)?;
        }
        Ok(())
    })?;
    flush(&mut st, &mut batch)?;
    Ok(st)
}
