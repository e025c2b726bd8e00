//! L3: Redis, shared by every instance: one server or a cluster, over TCP or TLS.
//! Lookups are one round of pipelined commands per request, writes are batched
//! `SET … EX` from a write-behind task (see [`conns`] for how a cluster takes them).
//! Every call has a short timeout; repeated failures open a circuit breaker so
//! requests stop waiting on a dead Redis, and a background probe closes it again.
//!
//! A lookup also asks each key's remaining TTL (in the same round trip), so a copy
//! made into memory or onto disk never outlives the entry in Redis.

mod client;
mod conns;
mod seal;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use self::client::Timeouts;
use self::conns::Conns;
pub use self::seal::Seal;
use crate::breaker::Breaker;
use crate::stats::{Tier, TierHealth, TierSnapshot, TierStats};
use crate::{CacheError, CacheKey, Entry, RedisConfig, Result, codec};

const WRITE_BATCH: usize = 256;

enum Op {
    Put(CacheKey, Entry),
    Flush(oneshot::Sender<()>),
}

pub struct RedisTier {
    conns: Arc<Pool>,
    breaker: Arc<Breaker>,
    stats: Arc<TierStats>,
    writes: mpsc::Sender<Op>,
    last_error: Arc<Mutex<Option<String>>>,
    retry_interval: Duration,
    /// Dropping it stops the probe task.
    _stop: oneshot::Sender<()>,
}

struct Pool {
    conns: Conns,
    prefix: Vec<u8>,
    /// Changed live.
    ttl_secs: std::sync::atomic::AtomicU64,
    timeout: Duration,
    seal: Option<Seal>,
}

/// An entry read from Redis and how long Redis keeps it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub entry: Entry,
    /// Time left before Redis drops it; `None` when it has no expiry.
    pub ttl: Option<Duration>,
}

impl Pool {
    fn conn(&self) -> conns::Conn {
        self.conns.conn()
    }

    fn key(&self, key: &CacheKey) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.prefix.len() + 32);
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// The bytes stored for an entry: its encoding, sealed when a secret is set.
    fn encode(&self, key: &CacheKey, entry: &Entry) -> Vec<u8> {
        let body = codec::encode(entry);
        match &self.seal {
            Some(seal) => seal.seal(key, body),
            None => body,
        }
    }

    fn decode(&self, key: &CacheKey, value: &[u8]) -> Result<Entry> {
        match &self.seal {
            Some(seal) => codec::decode(seal.open(key, value)?),
            None => codec::decode(value),
        }
    }

    async fn timed<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(CacheError::RedisTimeout(self.timeout.as_millis() as u64)),
        }
    }
}

/// Checks what [`RedisTier::connect`] would be given (URLs, cluster seeds, TLS
/// files) without connecting.
pub(crate) fn check(config: &RedisConfig, url: &str) -> Result<()> {
    client::build(config, url).map(drop)
}

impl RedisTier {
    /// Sets up the pool without waiting for Redis: connections are made lazily and
    /// remade in the background, so a server starts even while Redis is down. `url`
    /// is the first (with `cluster`, seed) node; the rest comes from `config`. Must
    /// run inside a Tokio runtime.
    pub fn connect(config: &RedisConfig, url: &str) -> Result<Self> {
        let client = client::build(config, url)?;
        let timeouts = Timeouts::of(config);
        let timeout = timeouts.response;
        let conns = Conns::new(client, config.pool_size, timeouts, config.retry_interval_ms)?;
        let pool = Arc::new(Pool {
            conns,
            prefix: config.key_prefix.as_bytes().to_vec(),
            ttl_secs: std::sync::atomic::AtomicU64::new(config.ttl_secs.max(1)),
            timeout,
            seal: config.hmac_key.as_ref().map(Seal::new),
        });
        let breaker = Arc::new(Breaker::new(config.failure_threshold));
        let stats = Arc::new(TierStats::new(Tier::Redis));
        let last_error = Arc::new(Mutex::new(None));
        let retry_interval = Duration::from_millis(config.retry_interval_ms.max(10));
        let (writes, rx) = mpsc::channel(config.write_queue.max(1));
        let failures = Failures {
            breaker: breaker.clone(),
            stats: stats.clone(),
            last_error: last_error.clone(),
        };
        tokio::spawn(write_behind(pool.clone(), failures.clone(), rx));
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(probe(pool.clone(), failures, retry_interval, stopped));
        Ok(Self {
            conns: pool,
            breaker,
            stats,
            writes,
            last_error,
            retry_interval,
            _stop: stop,
        })
    }

    /// Every key's entry, in one round trip; on any failure every key reads as a miss.
    pub async fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Entry>> {
        self.fetch_many(keys)
            .await
            .into_iter()
            .map(|f| f.map(|f| f.entry))
            .collect()
    }

    /// [`RedisTier::get_many`] with each entry's remaining TTL, asked in the same
    /// round trip. Any failure (with a cluster, of any node) makes every key a miss.
    pub async fn fetch_many(&self, keys: &[CacheKey]) -> Vec<Option<Fetched>> {
        if self.breaker.is_open() {
            self.stats.skipped(keys.len() as u64);
            return vec![None; keys.len()];
        }
        let t = Instant::now();
        let names: Vec<Vec<u8>> = keys.iter().map(|k| self.conns.key(k)).collect();
        let mut conn = self.conns.conn();
        let (values, ttls) = match self.conns.timed(conn.lookup(&names)).await {
            Ok(v) => v,
            Err(e) => {
                self.failures().fail(&e, keys.len());
                return vec![None; keys.len()];
            }
        };
        self.breaker.success();
        let found: Vec<Option<Fetched>> = values
            .into_iter()
            .zip(ttls)
            .zip(keys)
            .map(|((v, ttl_ms), key)| {
                // -2: the key went away between the two reads.
                if ttl_ms == -2 {
                    return None;
                }
                let bytes = v?;
                match self.conns.decode(key, &bytes) {
                    Ok(entry) => Some(Fetched {
                        entry,
                        ttl: u64::try_from(ttl_ms).ok().map(Duration::from_millis),
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring a corrupt redis cache entry");
                        self.stats.corrupt();
                        None
                    }
                }
            })
            .collect();
        self.stats.answered(&found, t);
        found
    }

    /// Counts an entry Redis returned that cannot be served (see [`Entry::check`]).
    pub fn rejected(&self) {
        self.stats.corrupt();
    }

    fn failures(&self) -> Failures {
        Failures {
            breaker: self.breaker.clone(),
            stats: self.stats.clone(),
            last_error: self.last_error.clone(),
        }
    }

    /// Queues a write; never blocks. Dropped (and counted) when the queue is full
    /// or the circuit is open.
    pub fn put(&self, key: CacheKey, entry: Entry) {
        if self.breaker.is_open() {
            self.stats.dropped(1);
            return;
        }
        if self.writes.try_send(Op::Put(key, entry)).is_err() {
            self.stats.dropped(1);
        }
    }

    /// Waits until the writes queued so far have been sent (or given up on).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.writes.send(Op::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Deletes every key under the prefix (on every master of a cluster); returns
    /// how many.
    pub async fn clear(&self) -> Result<u64> {
        let pattern = glob_escape(&self.conns.prefix);
        self.conns.conn().sweep(&pattern, true).await
    }

    /// A value kept beside the cache in a namespace of its own (chat sessions):
    /// not a cache entry, so never sealed, counted or swept by [`RedisTier::clear`].
    pub async fn get_value(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let cmd = redis::cmd("GET").arg(self.value_key(name)).clone();
        self.conns.conns.conn().query(&cmd).await
    }

    /// Stores a value that Redis drops after `ttl_secs`.
    pub async fn set_value(&self, name: &str, value: &[u8], ttl_secs: u64) -> Result<()> {
        let cmd = redis::cmd("SET")
            .arg(self.value_key(name))
            .arg(value)
            .arg("EX")
            .arg(ttl_secs.max(1))
            .clone();
        self.conns.conns.conn().query::<()>(&cmd).await
    }

    /// Whether a value was there to delete.
    pub async fn delete_value(&self, name: &str) -> Result<bool> {
        let cmd = redis::cmd("DEL").arg(self.value_key(name)).clone();
        Ok(self.conns.conns.conn().query::<u64>(&cmd).await? > 0)
    }

    fn value_key(&self, name: &str) -> Vec<u8> {
        let mut key = b"osprey-value:".to_vec();
        key.extend_from_slice(&self.conns.prefix);
        key.extend_from_slice(name.as_bytes());
        key
    }

    /// Counts keys under the prefix (a full SCAN: for tools, not the request path).
    pub async fn count(&self) -> Result<u64> {
        let pattern = glob_escape(&self.conns.prefix);
        self.conns.conn().sweep(&pattern, false).await
    }

    /// How long entries written from now on live in Redis.
    pub fn set_ttl(&self, ttl_secs: u64) {
        self.conns
            .ttl_secs
            .store(ttl_secs.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn health(&self) -> TierHealth {
        if self.breaker.is_open() {
            let why = self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| "unreachable".into());
            TierHealth::degraded(format!(
                "redis skipped after repeated failures ({why}); retrying every {} ms",
                self.retry_interval.as_millis()
            ))
        } else {
            TierHealth::ok()
        }
    }

    pub fn snapshot(&self) -> TierSnapshot {
        self.stats.snapshot(self.health())
    }
}

#[derive(Clone)]
struct Failures {
    breaker: Arc<Breaker>,
    stats: Arc<TierStats>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl Failures {
    fn fail(&self, e: &CacheError, items: usize) {
        self.stats.error(items as u64);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        if self.breaker.failure() {
            tracing::warn!(error = %e, "redis cache tier failing: skipping it until it answers again");
        }
    }
}

async fn write_behind(pool: Arc<Pool>, failures: Failures, mut rx: mpsc::Receiver<Op>) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        let mut items = Vec::with_capacity(batch.len());
        let mut acks = Vec::new();
        for op in batch.drain(..) {
            match op {
                Op::Put(key, entry) => items.push((pool.key(&key), pool.encode(&key, &entry))),
                Op::Flush(ack) => acks.push(ack),
            }
        }
        let puts = items.len();
        if puts > 0 {
            if failures.breaker.is_open() {
                failures.stats.dropped(puts as u64);
            } else {
                let mut conn = pool.conn();
                let sent = pool.timed(async {
                    Ok(conn
                        .set_many(
                            items,
                            pool.ttl_secs.load(std::sync::atomic::Ordering::Relaxed),
                        )
                        .await)
                });
                let written = sent.await.unwrap_or_else(|e| conns::Written {
                    stored: 0,
                    error: Some(e),
                });
                if written.stored > 0 {
                    failures.stats.written(written.stored as u64);
                }
                match written.error {
                    None => failures.breaker.success(),
                    Some(e) => {
                        let lost = puts - written.stored;
                        failures.fail(&e, lost);
                        failures.stats.dropped(lost as u64);
                    }
                }
            }
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// While the circuit is open, pings Redis every `interval` and closes it once it
/// answers on every connection.
async fn probe(
    pool: Arc<Pool>,
    failures: Failures,
    interval: Duration,
    mut stop: oneshot::Receiver<()>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        if !failures.breaker.is_open() {
            continue;
        }
        // Every connection of the pool: each reconnects on its own, and one still
        // broken would fail the first requests after the circuit closes.
        let pings = pool
            .conns
            .all()
            .into_iter()
            .map(|mut conn| async move { conn.ping().await });
        match pool.timed(futures::future::try_join_all(pings)).await {
            Ok(_) => {
                failures.breaker.close();
                tracing::info!("redis cache tier answering again");
            }
            Err(e) => {
                *failures
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            }
        }
    }
}

fn glob_escape(prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 2);
    for &b in prefix {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'*');
    out
}
