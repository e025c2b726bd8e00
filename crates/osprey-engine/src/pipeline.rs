//! The request pipeline around the engine: per-item cache lookup, single flight for
//! the misses, the model for what is left, and cache fill.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use osprey_cache::{CacheKey, Entry, KeySpace, Tier, TieredCache};
use osprey_metrics::event::{Event, ItemsCoalesced};

use osprey_models::Encoded;

use crate::flight::{Completion, Flight, Outcome, Registry};
use crate::{EmbedOptions, Engine, EngineError, ModelInfo, Permit, TextInput, Timings};

/// Where a response's vectors came from, for the `x-cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// No cache configured.
    Off,
    /// Every item from one tier (the lowest one used, when several answered).
    Hit(Tier),
    /// No item from the cache.
    Miss,
    /// Some items from the cache, the others computed.
    Partial,
}

impl CacheStatus {
    pub fn header(self) -> Option<&'static str> {
        match self {
            CacheStatus::Off => None,
            CacheStatus::Hit(t) => Some(t.hit_header()),
            CacheStatus::Miss => Some("miss"),
            CacheStatus::Partial => Some("partial"),
        }
    }
}

#[derive(Debug)]
pub struct Embedded {
    /// One per input, in order: the vector, its token count and its JSON rendering.
    pub entries: Vec<Entry>,
    /// Tokens of every input, cached or not (what the model would have seen).
    pub tokens: usize,
    pub timings: Timings,
    pub cache: CacheStatus,
    /// Inputs the model ran for this request (not counting ones it joined).
    pub computed: usize,
    /// Tokens of those inputs: the model work this request caused.
    pub computed_tokens: usize,
}

pub struct Pipeline {
    engine: Arc<Engine>,
    cache: Option<Arc<TieredCache>>,
    flights: Arc<Registry>,
    /// Key spaces of the four normalize × truncate choices without `dimensions`,
    /// hashed once here rather than on every request.
    common: [KeySpace; 4],
}

impl Pipeline {
    pub fn new(engine: Arc<Engine>, cache: Option<Arc<TieredCache>>) -> Self {
        let common = [(false, false), (false, true), (true, false), (true, true)].map(
            |(normalize, truncate)| {
                key_space(
                    &engine,
                    EmbedOptions {
                        normalize,
                        truncate,
                        dimensions: None,
                    },
                )
            },
        );
        Self {
            engine,
            cache: cache.filter(|c| c.is_enabled()),
            flights: Arc::new(Registry::default()),
            common,
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn info(&self) -> &ModelInfo {
        self.engine.info()
    }

    pub fn cache(&self) -> Option<&Arc<TieredCache>> {
        self.cache.as_ref()
    }

    /// Keys in flight right now.
    pub fn in_flight(&self) -> usize {
        self.flights.in_flight()
    }

    /// Everything that decides an output: made once for the common options. The
    /// caller is added when the cache keeps credentials apart.
    fn key_space(&self, opts: EmbedOptions, caller: Option<&[u8]>) -> Cow<'_, KeySpace> {
        let space = match opts.dimensions {
            None => Cow::Borrowed(
                &self.common[usize::from(opts.normalize) * 2 + usize::from(opts.truncate)],
            ),
            Some(_) => Cow::Owned(key_space(&self.engine, opts)),
        };
        match (&self.cache, caller) {
            (Some(cache), Some(id)) if !cache.shares_across_keys() => {
                Cow::Owned(space.into_owned().caller(id))
            }
            _ => space,
        }
    }

    /// How many values an output of these options has: what a cached entry must hold.
    fn dims(&self, opts: EmbedOptions) -> usize {
        let native = self.engine.info().dims;
        opts.dimensions.map_or(native, |d| d.min(native))
    }

    /// Embeds `texts` in order, from the cache where it can, under a permit of its
    /// own with the configured deadline (for callers outside an HTTP request).
    pub async fn embed<I: TextInput>(
        &self,
        texts: &[I],
        opts: EmbedOptions,
    ) -> Result<Embedded, EngineError> {
        let permit = self.engine.admission().enter(None)?;
        self.embed_permitted(texts, opts, &permit).await
    }

    /// Embeds `texts` in order within `permit`'s deadline. Admission control is
    /// charged only for the texts the cache does not hold, before any model work
    /// starts, and not at all when every text is cached: a request served from the
    /// cache is never refused for a full queue.
    pub async fn embed_permitted<I: TextInput>(
        &self,
        texts: &[I],
        opts: EmbedOptions,
        permit: &Permit,
    ) -> Result<Embedded, EngineError> {
        self.embed_permitted_for(texts, opts, permit, None).await
    }

    /// [`Pipeline::embed_permitted`] on behalf of `caller` (a stable identity of
    /// the credential, `None` when there is none): with `cache.share_across_keys`
    /// off, its results are cached apart from everyone else's.
    pub async fn embed_permitted_for<I: TextInput>(
        &self,
        texts: &[I],
        opts: EmbedOptions,
        permit: &Permit,
        caller: Option<&[u8]>,
    ) -> Result<Embedded, EngineError> {
        permit.within(self.run(texts, opts, permit, caller)).await
    }

    async fn run<I: TextInput>(
        &self,
        texts: &[I],
        opts: EmbedOptions,
        permit: &Permit,
        caller: Option<&[u8]>,
    ) -> Result<Embedded, EngineError> {
        let t0 = Instant::now();
        let space = self.key_space(opts, caller);
        let keys: Vec<CacheKey> = texts.iter().map(|t| t.key(&space)).collect();
        let (mut found, lowest_tier) = self.lookup(&keys, self.dims(opts)).await;
        let cached = found.iter().filter(|f| f.is_some()).count();
        let mut timings = Timings {
            cache: t0.elapsed(),
            ..Timings::default()
        };
        let missing = Missing::of(&keys, &found);
        let mut computed = (0, 0);
        if !missing.keys.is_empty() {
            let texts_missing: Vec<&I> = missing
                .keys
                .iter()
                .map(|k| &texts[missing.first_at[k]])
                .collect();
            // Held until the request is done: its work counts as outstanding.
            let _ticket = self.engine.charge(permit, &texts_missing)?;
            let owned = texts_missing.into_iter().cloned().collect();
            let by_key = self
                .compute(&missing, owned, opts, &mut timings, &mut computed)
                .await?;
            for (slot, key) in found.iter_mut().zip(&keys) {
                if slot.is_none() {
                    *slot = by_key.get(key).cloned();
                }
            }
        }
        let mut entries = Vec::with_capacity(found.len());
        let mut tokens = 0usize;
        for f in found {
            let entry =
                f.ok_or_else(|| EngineError::Backend("an input's result went missing".into()))?;
            tokens += entry.tokens as usize;
            entries.push(entry);
        }
        let cache = match (&self.cache, lowest_tier) {
            (None, _) => CacheStatus::Off,
            (Some(_), None) => CacheStatus::Miss,
            (Some(_), Some(t)) if cached == texts.len() => CacheStatus::Hit(t),
            (Some(_), Some(_)) => CacheStatus::Partial,
        };
        Ok(Embedded {
            entries,
            tokens,
            timings,
            cache,
            computed: computed.0,
            computed_tokens: computed.1,
        })
    }

    /// Every key's cached entry of `dims` values, if any, and the lowest tier that
    /// answered.
    async fn lookup(&self, keys: &[CacheKey], dims: usize) -> (Vec<Option<Entry>>, Option<Tier>) {
        let mut found: Vec<Option<Entry>> = vec![None; keys.len()];
        let mut lowest_tier: Option<Tier> = None;
        if let Some(cache) = &self.cache {
            for (slot, hit) in found.iter_mut().zip(cache.get_many_of(keys, dims).await) {
                if let Some(hit) = hit {
                    lowest_tier = Some(lowest_tier.map_or(hit.tier, |t| deeper(t, hit.tier)));
                    *slot = Some(hit.entry);
                }
            }
        }
        (found, lowest_tier)
    }

    /// Runs the model for the missing keys (joining flights already computing some
    /// of them) and returns their entries. `computed` gets the inputs and tokens
    /// this request's own flight ran.
    async fn compute<I: TextInput>(
        &self,
        missing: &Missing,
        texts: Vec<I>,
        opts: EmbedOptions,
        timings: &mut Timings,
        computed: &mut (usize, usize),
    ) -> Result<HashMap<CacheKey, Entry>, EngineError> {
        // Tokenize here, not in the flight: an input error belongs to this request
        // alone and must not fail others that joined its flight.
        let t = Instant::now();
        let mut encoded: HashMap<CacheKey, Encoded> = self
            .engine
            .tokenize_async(texts, opts.truncate)
            .await
            .map_err(|e| reindex(e, &missing.keys, &missing.first_at))?
            .into_iter()
            .zip(missing.keys.iter().copied())
            .map(|(ids, k)| (k, ids))
            .collect();
        timings.tokenize = t.elapsed();
        let claim = self.flights.claim(&missing.keys, |mine, done| {
            let ids: Vec<Encoded> = mine
                .iter()
                .map(|k| encoded.remove(k).unwrap_or_default())
                .collect();
            tokio::spawn(fly(
                self.engine.clone(),
                self.cache.clone(),
                ids,
                opts,
                mine,
                done,
            ))
        });
        if let Some(own) = &claim.own {
            computed.0 = own.keys().len();
        }
        let joined_items: usize = claim
            .joined
            .iter()
            .map(|f| {
                f.keys()
                    .iter()
                    .filter(|k| missing.first_at.contains_key(k))
                    .count()
            })
            .sum();
        if joined_items > 0 {
            ItemsCoalesced {
                items: joined_items as u64,
            }
            .emit();
        }
        let flights: Vec<&Arc<Flight>> = claim.own.iter().chain(claim.joined.iter()).collect();
        let outcomes = futures::future::join_all(flights.iter().map(|f| f.wait())).await;
        let mut by_key: HashMap<CacheKey, Entry> = HashMap::with_capacity(missing.keys.len());
        for (i, (flight, outcome)) in flights.iter().zip(outcomes).enumerate() {
            match outcome.as_ref() {
                Outcome::Done {
                    entries,
                    timings: t,
                } => {
                    if i == 0 && claim.own.is_some() {
                        computed.1 = entries.iter().map(|e| e.tokens as usize).sum();
                    }
                    timings.queue = timings.queue.max(t.queue);
                    timings.inference = timings.inference.max(t.inference);
                    timings.postprocess = timings.postprocess.max(t.postprocess);
                    for (k, e) in flight.keys().iter().zip(entries) {
                        if missing.first_at.contains_key(k) {
                            by_key.insert(*k, e.clone());
                        }
                    }
                }
                Outcome::Failed(e) => return Err(shared_error(e)),
            }
        }
        Ok(by_key)
    }
}

/// The distinct keys the cache lacks, each with the position of its first text.
struct Missing {
    keys: Vec<CacheKey>,
    first_at: HashMap<CacheKey, usize>,
}

impl Missing {
    fn of(keys: &[CacheKey], found: &[Option<Entry>]) -> Self {
        let mut first_at: HashMap<CacheKey, usize> = HashMap::new();
        let mut missing: Vec<CacheKey> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if found[i].is_none() && !first_at.contains_key(key) {
                first_at.insert(*key, i);
                missing.push(*key);
            }
        }
        Self {
            keys: missing,
            first_at,
        }
    }
}

/// A flight's task: runs the model for its keys, fills the cache, and tells every
/// request waiting on it.
async fn fly(
    engine: Arc<Engine>,
    cache: Option<Arc<TieredCache>>,
    ids: Vec<Encoded>,
    opts: EmbedOptions,
    mine: Vec<CacheKey>,
    done: Completion,
) {
    done.begin();
    let outcome = match engine.embed_tokens(ids, opts).await {
        Ok(out) => {
            let entries: Vec<Entry> = out
                .vectors
                .into_iter()
                .zip(out.token_counts)
                .map(|(v, n)| Entry::new(v, n as u32))
                .collect();
            if let Some(cache) = &cache {
                let items: Vec<(CacheKey, Entry)> =
                    mine.iter().copied().zip(entries.iter().cloned()).collect();
                cache.put_many(&items);
            }
            Outcome::Done {
                entries,
                timings: out.timings,
            }
        }
        Err(e) => Outcome::Failed(e),
    };
    done.finish(outcome, &mine);
}

/// The lower of two tiers (memory < disk < redis).
fn deeper(a: Tier, b: Tier) -> Tier {
    let rank = |t: Tier| match t {
        Tier::Memory => 0,
        Tier::Disk => 1,
        Tier::Redis => 2,
    };
    if rank(b) > rank(a) { b } else { a }
}

/// A tokenizer error with the index of the input in the request.
fn reindex(e: EngineError, asked: &[CacheKey], first_at: &HashMap<CacheKey, usize>) -> EngineError {
    let local = |index: usize| {
        asked
            .get(index)
            .and_then(|k| first_at.get(k))
            .copied()
            .unwrap_or(index)
    };
    match e {
        EngineError::InputTooLong { index, tokens, max } => EngineError::InputTooLong {
            index: local(index),
            tokens,
            max,
        },
        EngineError::Tokenize { index, message } => EngineError::Tokenize {
            index: local(index),
            message,
        },
        other => other,
    }
}

/// A flight's failure, for each request that waited on it.
fn shared_error(e: &EngineError) -> EngineError {
    match e {
        EngineError::Overloaded { queued, capacity } => EngineError::Overloaded {
            queued: *queued,
            capacity: *capacity,
        },
        EngineError::ShuttingDown => EngineError::ShuttingDown,
        EngineError::DeadlineExceeded { ms } => EngineError::DeadlineExceeded { ms: *ms },
        other => EngineError::Backend(other.to_string()),
    }
}

/// The version of what Osprey does to a text before the model (tokenizing,
/// truncating, pairing) and to the model's output after it (pooling, dimension
/// cut, normalization). Bump it with any change that alters a vector for the same
/// model files: cached entries of the old code then stop matching.
const PROCESSING_VERSION: u32 = 1;

/// Everything that decides an output: model, revision, backend, pooling, the
/// processing code's version, options.
fn key_space(engine: &Engine, opts: EmbedOptions) -> KeySpace {
    let info = engine.info();
    KeySpace::new(&info.id, &info.revision)
        .option("backend", info.backend)
        .option("pooling", format!("{:?}", info.pooling))
        .option("processing", PROCESSING_VERSION)
        .option("normalize", opts.normalize)
        .option("truncate", opts.truncate)
        .option("dimensions", opts.dimensions.unwrap_or(0))
}
