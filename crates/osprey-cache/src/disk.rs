//! L2: a local redb database. Chosen for being one crash-safe file (a torn write
//! never corrupts what was committed), pure Rust, with a stable format. The size
//! bound and TTL are ours: entries are indexed by insertion order and the oldest go
//! first (FIFO), in the same transaction that writes new ones.
//!
//! Reads run on the caller's thread (a lookup in redb's page cache takes
//! microseconds). Writes go through a bounded queue to one writer thread that
//! commits in groups; when the queue is full the write is dropped and counted.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, DatabaseError, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::stats::{Tier, TierHealth, TierSnapshot, TierStats};
use crate::{CacheError, CacheKey, DiskConfig, Entry, Result, codec};

/// key → [insertion seq u64][expires at, unix ms u64, 0 = never][codec bytes]
const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
/// insertion seq → key: the FIFO eviction order.
const ORDER: TableDefinition<u64, &[u8]> = TableDefinition::new("order");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ENTRY_HEADER: usize = 16;
/// Commits between durable ones are fast but lost on a crash; bound that loss.
const DURABLE_EVERY: Duration = Duration::from_secs(1);
const MAX_OPS_PER_COMMIT: usize = 512;

enum Op {
    Put(CacheKey, Entry),
    PutRaw(CacheKey, Vec<u8>),
    Delete(CacheKey),
    Clear(oneshot::Sender<Result<()>>),
    Flush(oneshot::Sender<()>),
}

pub struct DiskTier {
    db: Arc<Database>,
    path: PathBuf,
    capacity: u64,
    stats: Arc<TierStats>,
    sizes: Arc<Sizes>,
    ops: Mutex<Option<SyncSender<Op>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Sizes {
    bytes: AtomicU64,
    entries: AtomicU64,
    /// The last write error, for health.
    failing: std::sync::atomic::AtomicBool,
}

impl DiskTier {
    /// Opens (or creates) the database. A file that is not a readable database is
    /// moved aside (`<path>.corrupt`), counted, and replaced by an empty one.
    pub fn open(config: &DiskConfig, path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let stats = Arc::new(TierStats::new(Tier::Disk));
        let db = match open_db(path) {
            Ok(db) => db,
            Err(CacheError::DiskInUse { path }) => return Err(CacheError::DiskInUse { path }),
            Err(e) => {
                let aside = path.with_extension("corrupt");
                tracing::warn!(path = %path.display(), error = %e, moved_to = %aside.display(),
                    "disk cache unreadable: moved aside, starting empty");
                stats.corrupt();
                std::fs::rename(path, &aside)?;
                open_db(path)?
            }
        };
        let db = Arc::new(db);
        let sizes = Arc::new(Sizes::default());
        {
            let tx = db.begin_write().map_err(CacheError::disk)?;
            {
                tx.open_table(ENTRIES).map_err(CacheError::disk)?;
                tx.open_table(ORDER).map_err(CacheError::disk)?;
                let meta = tx.open_table(META).map_err(CacheError::disk)?;
                let get = |k| -> Result<u64> {
                    Ok(meta
                        .get(k)
                        .map_err(CacheError::disk)?
                        .map_or(0, |v| v.value()))
                };
                sizes.bytes.store(get("bytes")?, Ordering::Relaxed);
                sizes.entries.store(get("entries")?, Ordering::Relaxed);
            }
            tx.commit().map_err(CacheError::disk)?;
        }
        let (tx, rx) = sync_channel(config.write_queue.max(1));
        let writer = Writer {
            db: db.clone(),
            stats: stats.clone(),
            sizes: sizes.clone(),
            max_bytes: config.max_bytes,
            ttl_ms: config.ttl_secs.saturating_mul(1000),
        };
        let handle = std::thread::Builder::new()
            .name("osprey-disk-cache".into())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            db,
            path: path.to_path_buf(),
            capacity: config.max_bytes,
            stats,
            sizes,
            ops: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks up every key. Expired or corrupt entries read as misses (corrupt ones
    /// are counted and deleted).
    pub fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Entry>> {
        let t = Instant::now();
        let mut found = vec![None; keys.len()];
        let result = (|| -> Result<()> {
            let tx = self.db.begin_read().map_err(CacheError::disk)?;
            let table = tx.open_table(ENTRIES).map_err(CacheError::disk)?;
            let now = now_ms();
            for (slot, key) in found.iter_mut().zip(keys) {
                let Some(value) = table
                    .get(key.as_bytes().as_slice())
                    .map_err(CacheError::disk)?
                else {
                    continue;
                };
                match parse(value.value(), now) {
                    Ok(Some(entry)) => *slot = Some(entry),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "dropping a corrupt disk cache entry");
                        self.stats.corrupt();
                        self.send(Op::Delete(*key));
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "disk cache read failed");
            self.stats.error(keys.len() as u64);
            return vec![None; keys.len()];
        }
        let hits = found.iter().filter(|f| f.is_some()).count() as u64;
        self.stats
            .lookups(hits, keys.len() as u64 - hits, t.elapsed());
        found
    }

    /// Queues a write; never blocks.
    pub fn put(&self, key: CacheKey, entry: Entry) {
        self.send(Op::Put(key, entry));
    }

    /// Queues raw bytes as an entry's value, as found on disk. For tools and tests
    /// that need to plant a damaged entry.
    #[doc(hidden)]
    pub fn put_raw(&self, key: CacheKey, codec_bytes: Vec<u8>) {
        self.send(Op::PutRaw(key, codec_bytes));
    }

    fn send(&self, op: Op) {
        let guard = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = guard.as_ref() else { return };
        match tx.try_send(op) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.stats.dropped(1),
            Err(TrySendError::Disconnected(_)) => self.stats.error(1),
        }
    }

    /// Waits until every queued write is committed durably.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send_blocking(Op::Flush(tx)) {
            let _ = rx.await;
        }
    }

    pub async fn clear(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if !self.send_blocking(Op::Clear(tx)) {
            return Err(CacheError::Disk("the disk cache writer has stopped".into()));
        }
        rx.await
            .map_err(|_| CacheError::Disk("the disk cache writer has stopped".into()))?
    }

    /// Control messages wait for room rather than being dropped.
    fn send_blocking(&self, op: Op) -> bool {
        let tx = self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match tx {
            Some(tx) => tx.send(op).is_ok(),
            None => false,
        }
    }

    pub fn snapshot(&self) -> TierSnapshot {
        let entries = self.sizes.entries.load(Ordering::Relaxed);
        let bytes = self.sizes.bytes.load(Ordering::Relaxed);
        self.stats.size(entries, bytes);
        let health = if self.sizes.failing.load(Ordering::Relaxed) {
            TierHealth::degraded("writes to the disk cache are failing")
        } else {
            TierHealth::ok()
        };
        let mut s = self.stats.snapshot(health);
        s.entries = Some(entries);
        s.bytes = Some(bytes);
        s.capacity_bytes = Some(self.capacity);
        s
    }

    /// Stops the writer after it has committed what is queued.
    pub fn close(&self) {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = h.join();
        }
    }
}

impl Drop for DiskTier {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_db(path: &Path) -> Result<Database> {
    match Database::builder()
        .set_cache_size(32 * 1024 * 1024)
        .create(path)
    {
        Ok(db) => Ok(db),
        Err(DatabaseError::DatabaseAlreadyOpen) => Err(CacheError::DiskInUse {
            path: path.display().to_string(),
        }),
        Err(e) => Err(CacheError::disk(e)),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn header(value: &[u8]) -> Result<(u64, u64)> {
    if value.len() < ENTRY_HEADER {
        return Err(CacheError::Corrupt("short disk entry"));
    }
    let mut seq = [0; 8];
    let mut expires = [0; 8];
    seq.copy_from_slice(&value[..8]);
    expires.copy_from_slice(&value[8..16]);
    Ok((u64::from_le_bytes(seq), u64::from_le_bytes(expires)))
}

/// `Ok(None)` when expired.
fn parse(value: &[u8], now: u64) -> Result<Option<Entry>> {
    let (_, expires) = header(value)?;
    if expires != 0 && expires <= now {
        return Ok(None);
    }
    codec::decode(&value[ENTRY_HEADER..]).map(Some)
}

struct Writer {
    db: Arc<Database>,
    stats: Arc<TierStats>,
    sizes: Arc<Sizes>,
    max_bytes: u64,
    ttl_ms: u64,
}

impl Writer {
    fn run(self, rx: Receiver<Op>) {
        let mut last_durable = Instant::now();
        while let Ok(first) = rx.recv() {
            let mut ops = vec![first];
            while ops.len() < MAX_OPS_PER_COMMIT {
                match rx.try_recv() {
                    Ok(op) => ops.push(op),
                    Err(_) => break,
                }
            }
            let durable = last_durable.elapsed() >= DURABLE_EVERY
                || ops
                    .iter()
                    .any(|op| matches!(op, Op::Flush(_) | Op::Clear(_)));
            let mut acks = Vec::new();
            let mut cleared = Vec::new();
            let result = self.apply(ops, durable, &mut acks, &mut cleared);
            if durable && result.is_ok() {
                last_durable = Instant::now();
            }
            self.sizes.failing.store(result.is_err(), Ordering::Relaxed);
            if let Err(e) = &result {
                tracing::warn!(error = %e, "disk cache write failed");
                self.stats.error(1);
            }
            for ack in acks {
                let _ = ack.send(());
            }
            for c in cleared {
                let _ = c.send(match &result {
                    Ok(()) => Ok(()),
                    Err(e) => Err(CacheError::Disk(e.to_string())),
                });
            }
        }
        // The tier is closing: make everything committed so far durable.
        let _ = self.commit_durable_noop();
    }

    fn commit_durable_noop(&self) -> Result<()> {
        let mut tx = self.db.begin_write().map_err(CacheError::disk)?;
        tx.set_durability(Durability::Immediate)
            .map_err(CacheError::disk)?;
        tx.commit().map_err(CacheError::disk)
    }

    fn apply(
        &self,
        ops: Vec<Op>,
        durable: bool,
        acks: &mut Vec<oneshot::Sender<()>>,
        cleared: &mut Vec<oneshot::Sender<Result<()>>>,
    ) -> Result<()> {
        let mut tx = self.db.begin_write().map_err(CacheError::disk)?;
        tx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })
        .map_err(CacheError::disk)?;
        let mut written = 0u64;
        let mut evicted = 0u64;
        let (bytes, entries) = {
            let mut entries_t = tx.open_table(ENTRIES).map_err(CacheError::disk)?;
            let mut order = tx.open_table(ORDER).map_err(CacheError::disk)?;
            let mut meta = tx.open_table(META).map_err(CacheError::disk)?;
            let get = |m: &redb::Table<&str, u64>, k| -> Result<u64> {
                Ok(m.get(k).map_err(CacheError::disk)?.map_or(0, |v| v.value()))
            };
            let mut bytes = get(&meta, "bytes")?;
            let mut count = get(&meta, "entries")?;
            let mut seq = get(&meta, "next_seq")?;
            let now = now_ms();
            for op in ops {
                let (key, body) = match op {
                    Op::Put(key, entry) => (key, codec::encode(&entry)),
                    Op::PutRaw(key, raw) => (key, raw),
                    Op::Delete(key) => {
                        if let Some(old) = remove(&mut entries_t, &mut order, &key)? {
                            bytes = bytes.saturating_sub(old);
                            count = count.saturating_sub(1);
                        }
                        continue;
                    }
                    Op::Clear(ack) => {
                        entries_t.retain(|_, _| false).map_err(CacheError::disk)?;
                        order.retain(|_, _| false).map_err(CacheError::disk)?;
                        bytes = 0;
                        count = 0;
                        cleared.push(ack);
                        continue;
                    }
                    Op::Flush(ack) => {
                        acks.push(ack);
                        continue;
                    }
                };
                if let Some(old) = remove(&mut entries_t, &mut order, &key)? {
                    bytes = bytes.saturating_sub(old);
                    count = count.saturating_sub(1);
                }
                let expires = if self.ttl_ms == 0 {
                    0
                } else {
                    now + self.ttl_ms
                };
                let mut value = Vec::with_capacity(ENTRY_HEADER + body.len());
                value.extend_from_slice(&seq.to_le_bytes());
                value.extend_from_slice(&expires.to_le_bytes());
                value.extend_from_slice(&body);
                entries_t
                    .insert(key.as_bytes().as_slice(), value.as_slice())
                    .map_err(CacheError::disk)?;
                order
                    .insert(seq, key.as_bytes().as_slice())
                    .map_err(CacheError::disk)?;
                seq += 1;
                bytes += stored_size(value.len());
                count += 1;
                written += 1;
            }
            // Oldest first: beyond the size bound, and any expired at the front.
            loop {
                let Some((_, key)) = order
                    .first()
                    .map_err(CacheError::disk)?
                    .map(|(s, k)| (s.value(), k.value().to_vec()))
                else {
                    break;
                };
                let over = bytes > self.max_bytes;
                let expired = !over
                    && entries_t
                        .get(key.as_slice())
                        .map_err(CacheError::disk)?
                        // A damaged header counts as expired: it goes too.
                        .is_none_or(|v| {
                            header(v.value()).map_or(true, |(_, e)| e != 0 && e <= now)
                        });
                if !over && !expired {
                    break;
                }
                let Some(key) = CacheKey::from_slice(&key) else {
                    order.pop_first().map_err(CacheError::disk)?;
                    continue;
                };
                match remove(&mut entries_t, &mut order, &key)? {
                    Some(old) => {
                        bytes = bytes.saturating_sub(old);
                        count = count.saturating_sub(1);
                        evicted += 1;
                    }
                    None => {
                        order.pop_first().map_err(CacheError::disk)?;
                    }
                }
            }
            meta.insert("bytes", bytes).map_err(CacheError::disk)?;
            meta.insert("entries", count).map_err(CacheError::disk)?;
            meta.insert("next_seq", seq).map_err(CacheError::disk)?;
            (bytes, count)
        };
        tx.commit().map_err(CacheError::disk)?;
        self.sizes.bytes.store(bytes, Ordering::Relaxed);
        self.sizes.entries.store(entries, Ordering::Relaxed);
        if written > 0 {
            self.stats.written(written);
        }
        if evicted > 0 {
            self.stats.evicted(evicted);
        }
        Ok(())
    }
}

/// Bytes an entry is charged: its value, its key twice (entry and order index) and
/// the sequence number.
fn stored_size(value_len: usize) -> u64 {
    (value_len + 32 * 2 + 8) as u64
}

/// Removes a key and its order record; returns the bytes it was charged.
fn remove(
    entries: &mut redb::Table<&[u8], &[u8]>,
    order: &mut redb::Table<u64, &[u8]>,
    key: &CacheKey,
) -> Result<Option<u64>> {
    let old = entries
        .remove(key.as_bytes().as_slice())
        .map_err(CacheError::disk)?
        .map(|v| {
            let v = v.value();
            (header(v).map(|(s, _)| s).ok(), stored_size(v.len()))
        });
    let Some((seq, size)) = old else {
        return Ok(None);
    };
    if let Some(seq) = seq {
        order.remove(seq).map_err(CacheError::disk)?;
    }
    Ok(Some(size))
}

#[cfg(test)]
mod tests;
