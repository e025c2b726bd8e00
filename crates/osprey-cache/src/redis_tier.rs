//! L3: Redis, shared by every instance. Lookups are one pipelined `MGET` per
//! request, writes are batched `SET … EX` pipelines from a write-behind task. Every
//! call has a short timeout; repeated failures open a circuit breaker so requests
//! stop waiting on a dead Redis, and a background probe closes it again.
//!
//! A lookup also asks each key's remaining TTL (in the same round trip), so a copy
//! made into memory or onto disk never outlives the entry in Redis.

mod seal;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, oneshot};

use self::seal::Seal;
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
    conns: Vec<ConnectionManager>,
    next: AtomicUsize,
    prefix: Vec<u8>,
    ttl_secs: u64,
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
    fn conn(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
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

    async fn timed<T>(&self, fut: impl Future<Output = redis::RedisResult<T>>) -> Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(CacheError::RedisTimeout(self.timeout.as_millis() as u64)),
        }
    }
}

impl RedisTier {
    /// Sets up the pool without waiting for Redis: connections are made lazily and
    /// remade in the background, so a server starts even while Redis is down. Must
    /// run inside a Tokio runtime.
    pub fn connect(config: &RedisConfig, url: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let timeout = Duration::from_millis(config.timeout_ms.max(1));
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(config.retry_interval_ms.max(10)));
        let conns = (0..config.pool_size.max(1))
            .map(|_| {
                ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
            })
            .collect::<redis::RedisResult<Vec<_>>>()?;
        let pool = Arc::new(Pool {
            conns,
            next: AtomicUsize::new(0),
            prefix: config.key_prefix.as_bytes().to_vec(),
            ttl_secs: config.ttl_secs.max(1),
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

    /// One `MGET` for all keys; on any failure every key reads as a miss.
    pub async fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Entry>> {
        self.fetch_many(keys)
            .await
            .into_iter()
            .map(|f| f.map(|f| f.entry))
            .collect()
    }

    /// [`RedisTier::get_many`] with each entry's remaining TTL: one pipeline of an
    /// `MGET` and a `PTTL` per key, one round trip.
    pub async fn fetch_many(&self, keys: &[CacheKey]) -> Vec<Option<Fetched>> {
        if self.breaker.is_open() {
            self.stats.skipped(keys.len() as u64);
            return vec![None; keys.len()];
        }
        let t = Instant::now();
        let names: Vec<Vec<u8>> = keys.iter().map(|k| self.conns.key(k)).collect();
        let mut conn = self.conns.conn();
        let mut pipe = redis::pipe();
        pipe.cmd("MGET").arg(&names);
        for name in &names {
            pipe.cmd("PTTL").arg(name);
        }
        let reply: Result<Vec<redis::Value>> = self.conns.timed(pipe.query_async(&mut conn)).await;
        let (values, ttls) = match reply.and_then(|r| split_reply(r, keys.len())) {
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

    /// Deletes every key under the prefix; returns how many.
    pub async fn clear(&self) -> Result<u64> {
        let mut conn = self.conns.conn();
        let pattern = glob_escape(&self.conns.prefix);
        let (mut cursor, mut deleted) = (0u64, 0u64);
        loop {
            let (next, keys) = scan_page(&mut conn, cursor, &pattern).await?;
            if !keys.is_empty() {
                let n: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut conn)
                    .await?;
                deleted += n;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// Counts keys under the prefix (a full SCAN: for tools, not the request path).
    pub async fn count(&self) -> Result<u64> {
        let mut conn = self.conns.conn();
        let pattern = glob_escape(&self.conns.prefix);
        let (mut cursor, mut count) = (0u64, 0u64);
        loop {
            let (next, keys) = scan_page(&mut conn, cursor, &pattern).await?;
            count += keys.len() as u64;
            if next == 0 {
                return Ok(count);
            }
            cursor = next;
        }
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
        let mut pipe = redis::pipe();
        let mut puts = 0usize;
        let mut acks = Vec::new();
        for op in batch.drain(..) {
            match op {
                Op::Put(key, entry) => {
                    pipe.cmd("SET")
                        .arg(pool.key(&key))
                        .arg(pool.encode(&key, &entry))
                        .arg("EX")
                        .arg(pool.ttl_secs)
                        .ignore();
                    puts += 1;
                }
                Op::Flush(ack) => acks.push(ack),
            }
        }
        if puts > 0 {
            if failures.breaker.is_open() {
                failures.stats.dropped(puts as u64);
            } else {
                let mut conn = pool.conn();
                match pool.timed(pipe.query_async::<()>(&mut conn)).await {
                    Ok(()) => {
                        failures.breaker.success();
                        failures.stats.written(puts as u64);
                    }
                    Err(e) => {
                        failures.fail(&e, puts);
                        failures.stats.dropped(puts as u64);
                    }
                }
            }
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

/// While the circuit is open, pings Redis every `interval` and closes it on a reply.
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
        let mut conn = pool.conn();
        let ping = redis::cmd("PING");
        match pool.timed(ping.query_async::<String>(&mut conn)).await {
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

/// A lookup's `MGET` values and `PTTL`s (ms; -1 no expiry, -2 gone).
type Lookup = (Vec<Option<Vec<u8>>>, Vec<i64>);

/// The `MGET` values and the `PTTL`s of a lookup's pipeline reply.
fn split_reply(reply: Vec<redis::Value>, n: usize) -> Result<Lookup> {
    let wrong = || CacheError::Corrupt("redis answered a lookup with the wrong shape");
    if reply.len() != n + 1 {
        return Err(wrong());
    }
    let mut reply = reply.into_iter();
    let values: Vec<Option<Vec<u8>>> = reply
        .next()
        .map(redis::from_redis_value)
        .ok_or_else(wrong)?
        .map_err(|_| wrong())?;
    if values.len() != n {
        return Err(wrong());
    }
    let ttls = reply
        .map(|v| redis::from_redis_value::<i64>(v).map_err(|_| wrong()))
        .collect::<Result<Vec<i64>>>()?;
    Ok((values, ttls))
}

/// One page of `SCAN cursor MATCH pattern`: the next cursor and the keys.
async fn scan_page(
    conn: &mut ConnectionManager,
    cursor: u64,
    pattern: &[u8],
) -> Result<(u64, Vec<Vec<u8>>)> {
    Ok(redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .query_async(conn)
        .await?)
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
