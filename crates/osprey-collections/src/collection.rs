//! One collection: its store on disk and, in memory, the graph (which holds the
//! indexed vectors), the vectors waiting to be indexed, the payloads and the id
//! map.
//!
//! Reads share read locks and run in parallel. Writes are serialized by a
//! writer mutex: each commits to the store first (durable), then records the
//! change in memory, so readers never see a write that is not on disk. A write
//! does not touch the graph: its vectors go to the backlog, which searches
//! compare exhaustively, and the indexer moves them into the graph later
//! ([`Collection::index_step`]). A graph entry a write made stale (the point was
//! replaced or deleted) is hidden from searches until the indexer removes it.
//!
//! Locks are taken in one order: `indexing`, `writer`, `state`, `index`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use crate::backlog::Backlog;
use crate::error::{CollectionError, Result};
use crate::filter::{Compiled, Filter};
use crate::index::{Codes, DEFAULT_EF, VectorIndex, int8_scale};
use crate::indexer::{Backpressure, ROOM_WAIT};
use crate::point::{
    CollectionInfo, CollectionParams, Datatype, Distance, Payload, Point, PointId,
    QuantizationSearch, Record, ScoredPoint, SearchRequest, Selector, UpdateResult,
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
    index: RwLock<VectorIndex>,
    writer: Mutex<()>,
    /// Held by the indexer for a whole step, and by snapshots, which must see
    /// the graph still.
    indexing: Mutex<()>,
    pressure: Arc<Backpressure>,
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
    /// Vectors written and not yet in the graph.
    waiting: Backlog,
    /// The vectors the indexer is putting into the graph now; the graph may or
    /// may not have each of them yet.
    inserting: Arc<Backlog>,
    /// Keys whose graph entry is out of date (the point was replaced or
    /// deleted); the indexer removes them from the graph.
    stale: HashSet<u64>,
    /// Stale keys the indexer is removing now.
    removing: HashSet<u64>,
    /// Backlog bytes counted in the shared bound.
    counted: usize,
    /// Backlog bytes read back from the store when the memory was built (at
    /// open, or after a failed step), still waiting. The bound leaves them out:
    /// the graph would hold them anyway, and writes must not wait for a
    /// restart's indexing (1M × 384 is 1.5 GiB, far over the bound).
    recovered: usize,
    op: u64,
}

impl Collection {
    /// Opens the collection in `dir`: reads the store and loads the graph from
    /// its snapshot when that matches the store. The points written after the
    /// snapshot, or all of them without one, wait for the indexer.
    pub(crate) fn open(dir: &Path, limits: Limits, pressure: Arc<Backpressure>) -> Result<Self> {
        let (store, header, op) = Store::open(dir)?;
        snapshot::remove_partial(dir);
        let params = header.params;
        let codes = Codes::of(&params, store.scale()?);
        let started = Instant::now();
        let (mut state, index, snapshot_op) =
            match load_with_snapshot(&store, dir, op, &params, codes)? {
                Some((state, index, snapshot_op)) => (state, index, Some(snapshot_op)),
                None => {
                    let (state, index) = rebuild(&store, op, &params)?;
                    (state, index, None)
                }
            };
        let from_snapshot = snapshot_op.is_some();
        tracing::info!(
            collection = %header.name,
            points = state.by_id.len(),
            to_index = state.waiting.len(),
            from_snapshot,
            elapsed_ms = started.elapsed().as_millis() as u64,
            index_bytes = index.memory_usage(),
            "collection opened"
        );
        if !from_snapshot {
            snapshot::remove(dir);
        }
        state.recovered = state.backlog_bytes();
        if !state.waiting.is_empty() {
            pressure.wake();
        }
        Ok(Self {
            name: header.name,
            dir: dir.to_path_buf(),
            params,
            limits,
            store,
            state: RwLock::new(state),
            index: RwLock::new(index),
            writer: Mutex::new(()),
            indexing: Mutex::new(()),
            pressure,
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

    fn graph(&self) -> RwLockReadGuard<'_, VectorIndex> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn graph_mut(&self) -> RwLockWriteGuard<'_, VectorIndex> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    fn lock<'a>(m: &'a Mutex<()>) -> MutexGuard<'a, ()> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the writer lock; fails if the collection was deleted meanwhile.
    fn writer(&self) -> Result<MutexGuard<'_, ()>> {
        let guard = Self::lock(&self.writer);
        if self.deleted.load(AtomicOrdering::Acquire) {
            return Err(CollectionError::NotFound(self.name.clone()));
        }
        Ok(guard)
    }

    /// Marks the collection deleted once in-flight writes are done; later writes
    /// fail with NotFound, and its backlog leaves the shared bound.
    pub(crate) fn mark_deleted(&self) {
        let _i = Self::lock(&self.indexing);
        let _w = Self::lock(&self.writer);
        self.deleted.store(true, AtomicOrdering::Release);
        let mut st = self.write();
        self.pressure.adjust(st.counted, 0);
        st.counted = 0;
    }

    /// Brings the shared bound up to date with this collection's backlog,
    /// apart from what is left of the recovered part.
    fn count_backlog(&self, st: &mut State) {
        let backlog = st.backlog_bytes();
        st.recovered = st.recovered.min(backlog);
        let now = backlog - st.recovered;
        self.pressure.adjust(st.counted, now);
        st.counted = now;
    }

    pub(crate) fn info(&self) -> CollectionInfo {
        let st = self.read();
        let points = st.by_id.len();
        CollectionInfo {
            params: self.params.clone(),
            points_count: points as u64,
            indexed_vectors_count: points.saturating_sub(st.unindexed()) as u64,
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
        let bytes = prepared.len() * self.params.size * size_of::<f32>();
        self.pressure.wait_for_room(bytes, ROOM_WAIT)?;
        // The first write to an int8 collection fixes its scale, in the same
        // transaction as the points.
        let scale = match self.params.int8_quantile() {
            Some(quantile) if self.graph().needs_scale() => Some(int8_scale(
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
            self.graph_mut().set_scale(scale);
        }
        let mut st = self.write();
        for (p, _) in prepared {
            st.stage_upsert(p, op);
        }
        st.op = op;
        self.count_backlog(&mut st);
        drop(st);
        self.pressure.wake();
        Ok(UpdateResult { operation_id: op })
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
        st.apply_deletes(&ids, op);
        self.count_backlog(&mut st);
        drop(st);
        self.pressure.wake();
        Ok(UpdateResult { operation_id: op })
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
        let graph = self.graph();
        let n = st.by_id.len();
        if n == 0 || req.offset >= n {
            return Ok(Vec::new());
        }
        let wanted = wanted.min(n);
        // A breadth beyond the collection's size changes nothing, and past
        // MAX_EF a walk costs more than it gains.
        let ef = ef.min(n).min(MAX_EF);
        let int8 = graph.is_int8();
        // An int8 graph's candidates are rescored, so more of them are fetched.
        let fetch = if int8 {
            oversampled(wanted, ef, req.quantization).min(n)
        } else {
            wanted
        };
        let exact = req.exact || filter.as_ref().is_some_and(|f| st.selective(f));
        let hits = if exact {
            st.exact(&graph, distance, &query, fetch, filter.as_ref())?
        } else {
            // The walk skips graph entries that are out of date or whose point
            // waits in the backlog (the backlog is compared below).
            let clean = st.graph_is_current();
            let pred = |key: u64| {
                (clean || st.in_graph(key))
                    && filter
                        .as_ref()
                        .is_none_or(|f| st.slot(key).is_some_and(|s| f.matches(&s.id, &s.payload)))
            };
            let walked = if filter.is_none() && clean {
                graph.search(&query, fetch, ef, None)?
            } else {
                graph.search(&query, fetch, ef, Some(&pred))?
            };
            let waiting = st.unindexed_best(distance, &query, fetch, filter.as_ref());
            if walked.len() + waiting.len() < wanted {
                // The walk found too few: the matches are few or cut off.
                st.exact(&graph, distance, &query, fetch, filter.as_ref())?
            } else {
                let mut hits = walked;
                hits.extend(waiting);
                hits
            }
        };
        let hits = if int8 {
            self.rescore(&st, &query, hits, wanted, req.quantization)?
        } else {
            score::best(distance, hits, wanted)
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
                vector: if req.with_vector && !int8 && st.vector(&graph, key, &mut buf) {
                    Some(buf.clone())
                } else {
                    None
                },
            });
        }
        drop(graph);
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
        let hits = if q.rescore || q.ignore {
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
        Ok(score::best(distance, hits, wanted))
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
            let graph = self.graph();
            let mut seen = HashSet::new();
            let mut buf = vec![0.0f32; self.params.size];
            ids.iter()
                .filter(|id| seen.insert(*id))
                .filter_map(|id| {
                    let key = *st.by_id.get(id)?;
                    st.record(&graph, key, with_payload, with_vector, &mut buf)
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
        let graph = self.graph();
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
            if let Some(r) = st.record(&graph, *key, with_payload, with_vector, &mut buf) {
                page.push(r);
            }
        }
        let next = matching.next().map(|(id, _)| id.clone());
        drop(graph);
        drop(st);
        self.originals(&mut page, with_vector)?;
        Ok((page, next))
    }

    /// Saves a graph snapshot if the graph changed since the last one. With
    /// points still waiting to be indexed, the snapshot reflects the writes
    /// before the oldest of them; the next start replays the rest.
    pub(crate) fn flush(&self) -> Result<()> {
        // The graph must stand still while it is saved.
        let _i = Self::lock(&self.indexing);
        let _w = Self::lock(&self.writer);
        if self.deleted.load(AtomicOrdering::Acquire) {
            return Ok(());
        }
        // Deleted and replaced entries leave the graph first, so that the graph
        // holds exactly the saved keys.
        self.remove_stale()?;
        let st = self.read();
        let graph = self.graph();
        let op = st.indexed_op();
        if op == 0 || self.snapshot_op.load(AtomicOrdering::Acquire) == op {
            return Ok(());
        }
        let started = Instant::now();
        snapshot::save(
            &self.dir,
            op,
            &graph,
            st.live()
                .filter(|(key, _)| !st.waiting.contains(*key))
                .map(|(key, s)| (key, s.id.clone())),
        )?;
        self.snapshot_op.store(op, AtomicOrdering::Release);
        tracing::info!(
            collection = %self.name,
            points = st.by_id.len(),
            to_index = st.waiting.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "index snapshot saved"
        );
        Ok(())
    }

    /// Moves up to `max` waiting vectors into the graph, after taking the stale
    /// entries out of it. Returns how much it did (0: nothing to do). A failure
    /// rebuilds the memory from the store, which has every write.
    pub(crate) fn index_step(&self, max: usize) -> usize {
        let _i = Self::lock(&self.indexing);
        if self.deleted.load(AtomicOrdering::Acquire) {
            return 0;
        }
        match self.insert_some(max) {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(collection = %self.name, error = %e, "indexing failed; rebuilding the collection's memory from its store");
                let _w = Self::lock(&self.writer);
                match rebuild(&self.store, self.read().op, &self.params) {
                    Ok((state, index)) => {
                        let mut st = self.write();
                        let counted = st.counted;
                        *st = state;
                        st.counted = counted;
                        st.recovered = st.backlog_bytes();
                        self.count_backlog(&mut st);
                        *self.graph_mut() = index;
                        1
                    }
                    Err(e) => {
                        tracing::error!(collection = %self.name, error = %e, "rebuilding failed");
                        0
                    }
                }
            }
        }
    }

    /// One indexing step (the caller holds `indexing`).
    fn insert_some(&self, max: usize) -> Result<usize> {
        let removed = self.remove_stale()?;
        if self.graph().wants_compaction() {
            self.compact()?;
        }
        let batch = {
            let mut st = self.write();
            let batch = Arc::new(st.waiting.split_off(max));
            st.inserting = batch.clone();
            batch
        };
        if batch.is_empty() {
            return Ok(removed);
        }
        // The vectors are written with searches shut out for a moment; linking
        // them, the slow part, goes on beside searches, which meanwhile find
        // the batch in `inserting` and skip it in the graph.
        let items: Vec<(u64, &[f32])> = batch.iter().collect();
        let placed = self.graph_mut().place(&items);
        let added = placed.map(|placed| self.graph().link(&placed));
        let mut st = self.write();
        st.inserting = Arc::new(backlog(&self.params));
        self.count_backlog(&mut st);
        if added.is_err() {
            // Whatever of the batch did go in is out of date now.
            st.stale.extend(batch.iter().map(|(k, _)| k));
        }
        added?;
        Ok(removed + batch.len())
    }

    /// Rebuilds the graph from its live vectors, beside the old one, which
    /// serves searches meanwhile (the caller holds `indexing`, so the graph
    /// does not change; writes wait in the backlog, and the keys they make
    /// stale leave the new graph at the next step).
    fn compact(&self) -> Result<()> {
        let started = Instant::now();
        let (fresh, placed) = self.graph().live_copy()?;
        fresh.link(&placed);
        let before = std::mem::replace(&mut *self.graph_mut(), fresh);
        tracing::info!(
            collection = %self.name,
            points = self.graph().len(),
            bytes_before = before.memory_usage(),
            bytes_after = self.graph().memory_usage(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "graph compacted: removed vectors left it"
        );
        Ok(())
    }

    /// Takes the stale entries out of the graph and frees the keys of deleted
    /// points (the caller holds `indexing`).
    fn remove_stale(&self) -> Result<usize> {
        let removing: Vec<u64> = {
            let mut st = self.write();
            let stale = std::mem::take(&mut st.stale);
            st.removing.clone_from(&stale);
            stale.into_iter().collect()
        };
        if removing.is_empty() {
            return Ok(0);
        }
        {
            let mut graph = self.graph_mut();
            removing.iter().for_each(|k| graph.remove(*k));
        }
        let mut st = self.write();
        st.removing.clear();
        for k in &removing {
            if st.slot(*k).is_none() && !st.stale.contains(k) && !st.waiting.contains(*k) {
                st.free.push(*k);
            }
        }
        Ok(removing.len())
    }

    /// Whether every point is in the graph.
    pub(crate) fn is_indexed(&self) -> bool {
        self.read().unindexed() == 0
    }
}

fn compile(filter: Option<&Filter>) -> Result<Option<Compiled>> {
    Ok(match filter {
        Some(f) => Some(Compiled::new(f)?).filter(|c| !c.is_empty()),
        None => None,
    })
}

impl State {
    fn empty(params: &CollectionParams, op: u64, capacity: usize) -> Self {
        Self {
            slots: Vec::with_capacity(capacity),
            free: Vec::new(),
            by_id: BTreeMap::new(),
            waiting: backlog(params),
            inserting: Arc::new(backlog(params)),
            stale: HashSet::new(),
            removing: HashSet::new(),
            counted: 0,
            recovered: 0,
            op,
        }
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

    fn backlog_bytes(&self) -> usize {
        self.waiting.bytes() + self.inserting.bytes()
    }

    /// Live points whose vector is not (yet) searched in the graph.
    fn unindexed(&self) -> usize {
        let in_flight = self
            .inserting
            .iter()
            .filter(|(k, _)| self.slot(*k).is_some() && !self.waiting.contains(*k))
            .count();
        self.waiting.len() + in_flight
    }

    /// Whether the graph holds exactly the live points' current vectors, so a
    /// walk needs no check per key.
    fn graph_is_current(&self) -> bool {
        self.waiting.is_empty()
            && self.inserting.is_empty()
            && self.stale.is_empty()
            && self.removing.is_empty()
    }

    /// Whether the graph's entry for `key` is the point's current vector.
    fn in_graph(&self, key: u64) -> bool {
        self.slot(key).is_some()
            && !self.waiting.contains(key)
            && !self.inserting.contains(key)
            && !self.stale.contains(&key)
    }

    /// The vector of a live point, from the backlog or the graph.
    fn vector(&self, graph: &VectorIndex, key: u64, buf: &mut [f32]) -> bool {
        match self.waiting.get(key).or_else(|| self.inserting.get(key)) {
            Some(v) if v.len() == buf.len() => {
                buf.copy_from_slice(v);
                true
            }
            Some(_) => false,
            None => graph.get(key, buf),
        }
    }

    /// The `count` best backlog vectors for `query` (that pass the filter).
    fn unindexed_best(
        &self,
        distance: Distance,
        query: &[f32],
        count: usize,
        filter: Option<&Compiled>,
    ) -> Vec<(u64, f32)> {
        if self.waiting.is_empty() && self.inserting.is_empty() {
            return Vec::new();
        }
        let passes = |key: u64| {
            self.slot(key)
                .is_some_and(|s| filter.is_none_or(|f| f.matches(&s.id, &s.payload)))
        };
        let mut hits = self.waiting.scores(distance, query, passes);
        hits.extend(
            self.inserting
                .scores(distance, query, |k| !self.waiting.contains(k) && passes(k)),
        );
        score::best(distance, hits, count)
    }

    /// The operation the graph reflects whole: every write up to it is in the
    /// graph (the caller has removed the stale entries).
    fn indexed_op(&self) -> u64 {
        let oldest_waiting = self
            .waiting
            .iter()
            .filter_map(|(k, _)| self.slot(k).map(|s| s.version))
            .min();
        oldest_waiting.map_or(self.op, |v| v.saturating_sub(1))
    }

    fn record(
        &self,
        graph: &VectorIndex,
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
            vector: (with_vector && !graph.is_int8() && self.vector(graph, key, buf))
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

    /// Records an upserted point (id, payload, version) and puts its vector in
    /// the backlog; a graph entry it replaces becomes stale.
    fn stage_upsert(&mut self, p: Point, op: u64) {
        let key = match self.by_id.get(&p.id) {
            Some(&k) => {
                let in_flight = self.inserting.contains(k);
                let only_in_graph = !self.waiting.contains(k) && !self.removing.contains(&k);
                if in_flight || only_in_graph {
                    self.stale.insert(k);
                }
                k
            }
            None => {
                let k = self.allocate();
                self.by_id.insert(p.id.clone(), k);
                k
            }
        };
        self.waiting.put(key, &p.vector);
        if let Some(s) = self.slots.get_mut(key as usize) {
            *s = Some(Slot {
                id: p.id,
                version: op,
                payload: p.payload,
            });
        }
    }

    fn apply_deletes(&mut self, ids: &[PointId], op: u64) {
        self.op = op;
        for id in ids {
            let Some(key) = self.by_id.remove(id) else {
                continue;
            };
            if let Some(s) = self.slots.get_mut(key as usize) {
                *s = None;
            }
            let was_waiting = self.waiting.remove(key);
            if self.inserting.contains(key) || !was_waiting {
                // The graph has, or is about to have, an entry for it.
                self.stale.insert(key);
            } else if !self.stale.contains(&key) && !self.removing.contains(&key) {
                self.free.push(key);
            }
        }
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
        graph: &VectorIndex,
        distance: Distance,
        query: &[f32],
        wanted: usize,
        filter: Option<&Compiled>,
    ) -> Result<Vec<(u64, f32)>> {
        if filter.is_none() && self.graph_is_current() {
            // The graph's own brute force: no copies.
            return graph.exact(query, wanted);
        }
        let mut buf = vec![0.0f32; query.len()];
        let mut heap: BinaryHeap<Ranked<'_>> = BinaryHeap::with_capacity(wanted + 1);
        for (key, s) in self.live() {
            if filter.is_some_and(|f| !f.matches(&s.id, &s.payload)) {
                continue;
            }
            if !self.vector(graph, key, &mut buf) {
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

/// An empty backlog for a collection's vectors.
fn backlog(params: &CollectionParams) -> Backlog {
    let f16 = params.quantization.is_none() && params.datatype == Datatype::Float16;
    Backlog::new(params.size, f16)
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
/// store, then replays the writes made after it: points written since wait for
/// the indexer, points gone since are removed. `Ok(None)` means rebuild.
fn load_with_snapshot(
    store: &Store,
    dir: &Path,
    op: u64,
    params: &CollectionParams,
    codes: Codes,
) -> Result<Option<(State, VectorIndex, u64)>> {
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
    let mut st = State::empty(params, op, max_key);
    st.slots.resize_with(max_key, || None);
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
        match known.and_then(|k| st.slots.get_mut(k as usize).map(|s| (k, s))) {
            Some((k, s)) => {
                *s = Some(Slot {
                    id: p.id.clone(),
                    version: p.version,
                    payload: p.payload,
                });
                st.by_id.insert(p.id, k);
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
        index.remove(k);
    }
    for (known, _) in &changed {
        if let Some(k) = known {
            index.remove(*k);
        }
    }
    // Keys of rewritten points stay theirs; the other empty slots are free.
    let rewritten: HashSet<u64> = changed.iter().filter_map(|c| c.0).collect();
    st.free = st
        .slots
        .iter()
        .enumerate()
        .filter(|(i, s)| s.is_none() && !rewritten.contains(&(*i as u64)))
        .map(|(i, _)| i as u64)
        .collect();
    for (known, p) in changed {
        let key = known.unwrap_or_else(|| st.allocate());
        st.by_id.insert(p.id.clone(), key);
        st.waiting.put(key, &p.vector);
        if let Some(s) = st.slots.get_mut(key as usize) {
            *s = Some(Slot {
                id: p.id,
                version: p.version,
                payload: p.payload,
            });
        }
    }
    if replayed + removed > 0 {
        tracing::info!(
            snapshot_op,
            store_op = op,
            replayed,
            removed,
            "the writes made after the index snapshot wait to be indexed"
        );
    }
    Ok(Some((st, index, snapshot_op)))
}

/// Builds the in-memory state from the store with an empty graph: every point
/// waits for the indexer.
fn rebuild(store: &Store, op: u64, params: &CollectionParams) -> Result<(State, VectorIndex)> {
    let n = usize::try_from(store.len()?).unwrap_or(usize::MAX);
    let mut st = State::empty(params, op, n);
    let index = VectorIndex::new(
        params.size,
        params.distance,
        Codes::of(params, store.scale()?),
        n,
    )?;
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
        st.waiting.put(key, &p.vector);
        st.slots.push(Some(Slot {
            id: p.id,
            version: p.version,
            payload: p.payload,
        }));
        Ok(())
    })?;
    Ok((st, index))
}
