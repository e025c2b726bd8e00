//! The HNSW graph: a thin wrapper over usearch that owns the vectors in memory.
//!
//! Keys are the collection's internal slot numbers, not point ids. Cosine vectors
//! arrive normalized, so Cosine and Dot both use the inner-product metric;
//! Euclid uses the squared L2 metric and reports its square root.
//!
//! The graph holds float32, float16, or int8 codes (`round(x × scale)`, saturated
//! at ±127, with the scale chosen by the collection). usearch compares int8 codes
//! by their integer dot product or squared distance, which rank as the vectors
//! do; scores are brought back to the vectors' units by the scale.
//!
//! usearch serves a fixed number of concurrent calls (one scratch context each);
//! past that a call would fail, so every call takes a permit first.

use std::path::Path;
use std::sync::{Condvar, Mutex};

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::error::{CollectionError, Result};
use crate::kernel;
use crate::point::{CollectionParams, Datatype, Distance};

/// Graph degree (HNSW `M`): links per node on the upper layers, twice that on the
/// bottom one.
pub const CONNECTIVITY: usize = 16;
/// Candidate list size while inserting (HNSW `ef_construction`).
pub const EF_CONSTRUCTION: usize = 128;
/// Candidate list size while searching (HNSW `ef`), unless a request names one.
/// On 100k × 384 clustered vectors it gives recall@10 ≥ 0.95 (see the tests).
pub const DEFAULT_EF: usize = 64;
/// Components looked at to choose an int8 scale: enough for a stable quantile.
const SCALE_SAMPLE: usize = 1 << 20;

/// What the graph holds for each vector.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Codes {
    F32,
    F16,
    /// int8 codes; the scale is unknown until the first vectors are written.
    I8 {
        scale: Option<f32>,
    },
}

impl Codes {
    pub(crate) fn of(params: &CollectionParams, scale: Option<f32>) -> Self {
        match (params.quantization, params.datatype) {
            (Some(_), _) => Self::I8 { scale },
            (None, Datatype::Float16) => Self::F16,
            (None, Datatype::Float32) => Self::F32,
        }
    }

    fn scalar(self) -> ScalarKind {
        match self {
            Self::F32 => ScalarKind::F32,
            Self::F16 => ScalarKind::F16,
            Self::I8 { .. } => ScalarKind::I8,
        }
    }
}

/// The int8 scale that maps the `quantile` of the absolute component values
/// (sampled evenly from `vectors`) to 127.
pub(crate) fn int8_scale<'a>(
    vectors: impl Iterator<Item = &'a [f32]> + Clone,
    quantile: f32,
) -> f32 {
    let total: usize = vectors.clone().map(<[f32]>::len).sum();
    let step = total.div_ceil(SCALE_SAMPLE).max(1);
    let mut abs: Vec<f32> = vectors
        .flat_map(|v| v.iter())
        .step_by(step)
        .map(|x| x.abs())
        .filter(|x| x.is_finite())
        .collect();
    if abs.is_empty() {
        return 1.0;
    }
    let last = abs.len() - 1;
    let at = ((last as f32 * quantile.clamp(0.0, 1.0)).round() as usize).min(last);
    let (_, q, _) = abs.select_nth_unstable_by(at, f32::total_cmp);
    if *q > 0.0 { 127.0 / *q } else { 1.0 }
}

fn quantize(v: &[f32], scale: f32, out: &mut Vec<i8>) {
    out.clear();
    // The clamp saturates; `as` maps what is left exactly.
    out.extend(
        v.iter()
            .map(|x| (x * scale).round().clamp(-127.0, 127.0) as i8),
    );
}

pub(crate) struct VectorIndex {
    inner: Index,
    dims: usize,
    distance: Distance,
    codes: Codes,
    threads: usize,
    permits: Permits,
}

impl VectorIndex {
    pub(crate) fn new(
        dims: usize,
        distance: Distance,
        codes: Codes,
        capacity: usize,
    ) -> Result<Self> {
        let options = IndexOptions {
            dimensions: dims,
            metric: metric(distance),
            quantization: codes.scalar(),
            connectivity: CONNECTIVITY,
            expansion_add: EF_CONSTRUCTION,
            // The search breadth is set per call through the wanted count
            // (usearch searches with max(expansion, count)).
            expansion_search: 1,
            multi: false,
        };
        let inner = Index::new(&options).map_err(CollectionError::index)?;
        Self::ready(inner, dims, distance, codes, capacity)
    }

    /// Loads a graph saved by [`VectorIndex::save`]; it must have been built with
    /// this size, metric and element type.
    pub(crate) fn restore(
        path: &Path,
        dims: usize,
        distance: Distance,
        codes: Codes,
    ) -> Result<Self> {
        let path = path
            .to_str()
            .ok_or_else(|| CollectionError::Index("the index path is not UTF-8".into()))?;
        let meta = Index::metadata(path).map_err(CollectionError::index)?;
        if usize::try_from(meta.dimensions).ok() != Some(dims)
            || meta.metric != metric(distance)
            || meta.quantization != codes.scalar()
        {
            return Err(CollectionError::Index(
                "the saved index does not fit the collection's parameters".into(),
            ));
        }
        let inner = Index::restore(path).map_err(CollectionError::index)?;
        inner.change_expansion_add(EF_CONSTRUCTION);
        inner.change_expansion_search(1);
        let size = inner.size();
        Self::ready(inner, dims, distance, codes, size)
    }

    fn ready(
        mut inner: Index,
        dims: usize,
        distance: Distance,
        codes: Codes,
        capacity: usize,
    ) -> Result<Self> {
        if codes == Codes::F32 {
            inner.change_metric::<f32>(float32_metric(distance, dims));
        }
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .saturating_mul(2)
            .clamp(4, 64);
        inner
            .reserve_capacity_and_threads(capacity.max(64), threads)
            .map_err(CollectionError::index)?;
        Ok(Self {
            inner,
            dims,
            distance,
            codes,
            threads,
            permits: Permits::new(threads),
        })
    }

    /// Live vectors in the graph.
    pub(crate) fn len(&self) -> usize {
        self.inner.size()
    }

    /// Makes room for `additional` more vectors. Growing the graph must not race
    /// with searches, hence `&mut`.
    pub(crate) fn reserve(&mut self, additional: usize) -> Result<()> {
        let needed = self.inner.size().saturating_add(additional);
        if needed > self.inner.capacity() {
            let grown = needed.max(self.inner.capacity().saturating_mul(2)).max(64);
            self.inner
                .reserve_capacity_and_threads(grown, self.threads)
                .map_err(CollectionError::index)?;
        }
        Ok(())
    }

    /// Whether the graph holds int8 codes (its scores are estimates).
    pub(crate) fn is_int8(&self) -> bool {
        matches!(self.codes, Codes::I8 { .. })
    }

    /// Whether an int8 graph still needs its scale.
    pub(crate) fn needs_scale(&self) -> bool {
        self.codes == Codes::I8 { scale: None }
    }

    pub(crate) fn set_scale(&mut self, scale: f32) {
        if self.is_int8() {
            self.codes = Codes::I8 { scale: Some(scale) };
        }
    }

    fn scale(&self) -> Result<Option<f32>> {
        match self.codes {
            Codes::I8 { scale: None } => Err(CollectionError::Index(
                "the int8 graph has no scale yet".into(),
            )),
            Codes::I8 { scale } => Ok(scale),
            Codes::F32 | Codes::F16 => Ok(None),
        }
    }

    /// Adds vectors under keys not in the graph, after [`VectorIndex::reserve`]
    /// made room for them. Safe while searches run once the graph holds a node
    /// (see `Collection::add_to_graph` for the first one).
    ///
    /// One insert at a time: concurrent inserts into a usearch graph can leave
    /// a node that no search reaches (usearch issue #735; seen here in graphs of
    /// 1k to 12k nodes, with each point's own vector not finding it). Inserts
    /// run behind the writes, on the indexer's thread, so this costs no write
    /// any time.
    pub(crate) fn add_batch(&self, items: &[(u64, &[f32])]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let scale = self.scale()?;
        let _permit = self.permits.take();
        let mut codes = Vec::new();
        for (key, v) in items {
            match scale {
                Some(scale) => {
                    quantize(v, scale, &mut codes);
                    self.inner.add(*key, &codes)
                }
                None => self.inner.add(*key, v),
            }
            .map_err(CollectionError::index)?;
        }
        Ok(())
    }

    pub(crate) fn remove(&mut self, key: u64) -> Result<()> {
        self.inner.remove(key).map_err(CollectionError::index)?;
        Ok(())
    }

    /// Copies the vector of `key` into `buf` (of the index's size); false if absent.
    /// An int8 graph gives back its codes over the scale.
    /// (A copy needs no scratch context, so no permit.)
    pub(crate) fn get(&self, key: u64, buf: &mut [f32]) -> bool {
        match self.codes {
            Codes::I8 { scale: Some(scale) } => {
                let mut codes = vec![0i8; buf.len()];
                if !matches!(self.inner.get(key, &mut codes), Ok(n) if n > 0) {
                    return false;
                }
                for (x, c) in buf.iter_mut().zip(&codes) {
                    *x = f32::from(*c) / scale;
                }
                true
            }
            Codes::I8 { scale: None } => false,
            Codes::F32 | Codes::F16 => matches!(self.inner.get(key, buf), Ok(n) if n > 0),
        }
    }

    /// The `count` nearest keys with their scores, best first, searching with a
    /// candidate list of at least `ef`. With a predicate, only keys it accepts are
    /// returned, and the walk goes on through the others.
    pub(crate) fn search(
        &self,
        query: &[f32],
        count: usize,
        ef: usize,
        filter: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<(u64, f32)>> {
        let wanted = count.max(ef).max(1);
        self.call(query, count, |index, q| match filter {
            None => q.search(index, wanted),
            Some(f) => q.filtered_search(index, wanted, f),
        })
    }

    /// The `count` nearest keys by brute force over every vector, best first.
    pub(crate) fn exact(&self, query: &[f32], count: usize) -> Result<Vec<(u64, f32)>> {
        self.call(query, count, |index, q| q.exact_search(index, count.max(1)))
    }

    /// Checks the query, brings it to the graph's element type, runs `f` under a
    /// permit, and scores the first `count` matches.
    fn call(
        &self,
        query: &[f32],
        count: usize,
        f: impl FnOnce(&Index, Query<'_>) -> Result<usearch::ffi::Matches>,
    ) -> Result<Vec<(u64, f32)>> {
        if query.len() != self.dims {
            return Err(CollectionError::WrongVectorSize {
                expected: self.dims,
                got: query.len(),
            });
        }
        let scale = self.scale()?;
        let codes;
        let q = match scale {
            Some(scale) => {
                let mut c = Vec::with_capacity(query.len());
                quantize(query, scale, &mut c);
                codes = c;
                Query::I8(&codes)
            }
            None => Query::F32(query),
        };
        let matches = {
            let _permit = self.permits.take();
            f(&self.inner, q)?
        };
        let unit = scale.unwrap_or(1.0);
        Ok(matches
            .keys
            .into_iter()
            .zip(matches.distances)
            .take(count)
            .map(|(k, d)| (k, self.score(d, unit)))
            .collect())
    }

    /// usearch's distance as the collection's score; `unit` is the int8 scale
    /// (1 otherwise). On int8 codes the inner-product distance is one minus the
    /// integer dot product.
    fn score(&self, d: f32, unit: f32) -> f32 {
        match self.distance {
            Distance::Cosine | Distance::Dot => (1.0 - d) / (unit * unit),
            Distance::Euclid => d.max(0.0).sqrt() / unit,
        }
    }

    /// Writes the graph to `path` (the caller makes that atomic).
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        let path = path
            .to_str()
            .ok_or_else(|| CollectionError::Index("the index path is not UTF-8".into()))?;
        let _permit = self.permits.take();
        self.inner.save(path).map_err(CollectionError::index)
    }

    pub(crate) fn memory_usage(&self) -> usize {
        self.inner.memory_usage()
    }
}

/// A query in the graph's element type (usearch converts float32 to float16).
#[derive(Clone, Copy)]
enum Query<'a> {
    F32(&'a [f32]),
    I8(&'a [i8]),
}

impl Query<'_> {
    fn search(self, index: &Index, n: usize) -> Result<usearch::ffi::Matches> {
        match self {
            Self::F32(q) => index.search(q, n).map_err(CollectionError::index),
            Self::I8(q) => index.search(q, n).map_err(CollectionError::index),
        }
    }

    fn exact_search(self, index: &Index, n: usize) -> Result<usearch::ffi::Matches> {
        match self {
            Self::F32(q) => index.exact_search(q, n).map_err(CollectionError::index),
            Self::I8(q) => index.exact_search(q, n).map_err(CollectionError::index),
        }
    }

    fn filtered_search(
        self,
        index: &Index,
        n: usize,
        f: &dyn Fn(u64) -> bool,
    ) -> Result<usearch::ffi::Matches> {
        match self {
            Self::F32(q) => index
                .filtered_search(q, n, f)
                .map_err(CollectionError::index),
            Self::I8(q) => index
                .filtered_search(q, n, f)
                .map_err(CollectionError::index),
        }
    }
}

/// usearch's distance for float32 vectors, from [`crate::kernel`]: one minus
/// the dot product, or the squared L2 distance, as its built-in metrics define
/// them (the saved graph keeps the built-in kind, so either reads it).
#[allow(unsafe_code)]
fn float32_metric(
    distance: Distance,
    dims: usize,
) -> Box<dyn Fn(*const f32, *const f32) -> f32 + Send + Sync> {
    let of = move |p: *const f32| {
        // SAFETY: usearch calls a metric only with pointers to whole vectors of
        // the index's `dims` float32 values, which it owns and does not change
        // during the call.
        unsafe { std::slice::from_raw_parts(p, dims) }
    };
    match distance {
        Distance::Cosine | Distance::Dot => Box::new(move |a, b| 1.0 - kernel::dot(of(a), of(b))),
        Distance::Euclid => Box::new(move |a, b| kernel::l2_squared(of(a), of(b))),
    }
}

fn metric(distance: Distance) -> MetricKind {
    match distance {
        Distance::Cosine | Distance::Dot => MetricKind::IP,
        Distance::Euclid => MetricKind::L2sq,
    }
}

/// A counting semaphore bounding concurrent calls into the index.
struct Permits {
    free: Mutex<usize>,
    returned: Condvar,
}

struct Permit<'a>(&'a Permits);

impl Permits {
    fn new(n: usize) -> Self {
        Self {
            free: Mutex::new(n),
            returned: Condvar::new(),
        }
    }

    fn take(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.returned.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += 1;
        self.0.returned.notify_one();
    }
}
