//! The disk tier's one writer thread: it takes queued operations in groups and
//! commits each group in one transaction, evicting the oldest entries beyond the
//! size bound and the expired ones at the front of the order, in that same
//! transaction.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};
use tokio::sync::oneshot;

use super::Sizes;
use super::layout::{self, ENTRIES, META, ORDER};
use crate::clock::{self, SharedClock};
use crate::stats::TierStats;
use crate::{CacheError, CacheKey, Entry, Result, codec};

/// Commits between durable ones are fast but lost on a crash; bound that loss.
const DURABLE_EVERY: Duration = Duration::from_secs(1);
const MAX_OPS_PER_COMMIT: usize = 512;

pub(super) enum Op {
    /// The entry and a deadline it must not outlive (unix ms, 0 = none).
    Put(CacheKey, Entry, u64),
    Delete(CacheKey),
    Clear(oneshot::Sender<Result<()>>),
    Flush(oneshot::Sender<()>),
}

impl Op {
    /// Someone waits for this one: commit it durably.
    fn wants_durable(&self) -> bool {
        matches!(self, Op::Flush(_) | Op::Clear(_))
    }
}

/// The tier's size and entry lifetime, read by the writer at each write.
pub(crate) struct Bounds {
    pub max_bytes: AtomicU64,
    pub ttl_ms: AtomicU64,
}

pub(super) struct Writer {
    pub(super) db: Arc<Database>,
    pub(super) stats: Arc<TierStats>,
    pub(super) sizes: Arc<Sizes>,
    pub(super) clock: SharedClock,
    /// Shared with the tier, which changes them live.
    pub(super) bounds: Arc<Bounds>,
}

/// Those waiting on the commit of a group: answered once it is done.
#[derive(Default)]
struct Waiters {
    flushed: Vec<oneshot::Sender<()>>,
    cleared: Vec<oneshot::Sender<Result<()>>>,
}

impl Waiters {
    fn answer(self, result: &Result<()>) {
        for ack in self.flushed {
            let _ = ack.send(());
        }
        for ack in self.cleared {
            let _ = ack.send(match result {
                Ok(()) => Ok(()),
                Err(e) => Err(CacheError::Disk(e.to_string())),
            });
        }
    }
}

impl Writer {
    pub(super) fn run(self, rx: Receiver<Op>) {
        let mut last_durable = Instant::now();
        while let Ok(first) = rx.recv() {
            let ops = group(first, &rx);
            let durable =
                last_durable.elapsed() >= DURABLE_EVERY || ops.iter().any(Op::wants_durable);
            let mut waiters = Waiters::default();
            let result = self.commit(ops, durable, &mut waiters);
            if durable && result.is_ok() {
                last_durable = Instant::now();
            }
            self.sizes.failing.store(result.is_err(), Ordering::Relaxed);
            if let Err(e) = &result {
                tracing::warn!(error = %e, "disk cache write failed");
                self.stats.error(1);
            }
            waiters.answer(&result);
        }
        // The tier is closing: make everything committed so far durable.
        let _ = self.commit_durable_noop();
    }

    fn commit_durable_noop(&self) -> Result<()> {
        let tx = begin(&self.db, true)?;
        tx.commit().map_err(CacheError::disk)
    }

    /// Applies a group of operations in one transaction, then evicts.
    fn commit(&self, ops: Vec<Op>, durable: bool, waiters: &mut Waiters) -> Result<()> {
        let tx = begin(&self.db, durable)?;
        let tables = {
            let mut tables = Tables::open(&tx)?;
            let now = self.clock.now_ms();
            let expires = clock::expiry(now, self.bounds.ttl_ms.load(Ordering::Relaxed));
            for op in ops {
                match op {
                    Op::Put(key, entry, deadline) => {
                        let expires = clock::earliest(expires, deadline);
                        tables.insert(key, &codec::encode(&entry), expires)?
                    }
                    Op::Delete(key) => tables.delete(&key)?,
                    Op::Clear(ack) => {
                        tables.clear()?;
                        waiters.cleared.push(ack);
                    }
                    Op::Flush(ack) => waiters.flushed.push(ack),
                }
            }
            tables.evict(self.bounds.max_bytes.load(Ordering::Relaxed), now)?;
            tables.store()?;
            tables.totals()
        };
        tx.commit().map_err(CacheError::disk)?;
        self.publish(tables);
        Ok(())
    }

    fn publish(&self, totals: Totals) {
        self.sizes.bytes.store(totals.bytes, Ordering::Relaxed);
        self.sizes.entries.store(totals.entries, Ordering::Relaxed);
        if totals.written > 0 {
            self.stats.written(totals.written);
        }
        if totals.evicted > 0 {
            self.stats.evicted(totals.evicted);
        }
    }
}

/// The first operation and whatever else is already queued, up to a commit's worth.
fn group(first: Op, rx: &Receiver<Op>) -> Vec<Op> {
    let mut ops = vec![first];
    while ops.len() < MAX_OPS_PER_COMMIT {
        match rx.try_recv() {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

fn begin(db: &Database, durable: bool) -> Result<WriteTransaction> {
    let mut tx = db.begin_write().map_err(CacheError::disk)?;
    tx.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    })
    .map_err(CacheError::disk)?;
    Ok(tx)
}

/// What a commit leaves behind and what it did.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Totals {
    pub(super) bytes: u64,
    pub(super) entries: u64,
    written: u64,
    evicted: u64,
}

/// The tables of one write transaction and the running totals kept in `META`.
pub(super) struct Tables<'t> {
    entries: Table<'t, &'static [u8], &'static [u8]>,
    order: Table<'t, u64, &'static [u8]>,
    meta: Table<'t, &'static str, u64>,
    bytes: u64,
    count: u64,
    next_seq: u64,
    written: u64,
    evicted: u64,
}

impl<'t> Tables<'t> {
    /// Opens (creating if new) the tables and reads the totals.
    pub(super) fn open(tx: &'t WriteTransaction) -> Result<Self> {
        let entries = tx.open_table(ENTRIES).map_err(CacheError::disk)?;
        let order = tx.open_table(ORDER).map_err(CacheError::disk)?;
        let meta = tx.open_table(META).map_err(CacheError::disk)?;
        let get = |k| -> Result<u64> {
            Ok(meta
                .get(k)
                .map_err(CacheError::disk)?
                .map_or(0, |v| v.value()))
        };
        let (bytes, count, next_seq) = (get("bytes")?, get("entries")?, get("next_seq")?);
        Ok(Self {
            entries,
            order,
            meta,
            bytes,
            count,
            next_seq,
            written: 0,
            evicted: 0,
        })
    }

    pub(super) fn totals(&self) -> Totals {
        Totals {
            bytes: self.bytes,
            entries: self.count,
            written: self.written,
            evicted: self.evicted,
        }
    }

    /// Writes the totals back to `META`.
    pub(super) fn store(&mut self) -> Result<()> {
        for (name, value) in [
            ("bytes", self.bytes),
            ("entries", self.count),
            ("next_seq", self.next_seq),
        ] {
            self.meta.insert(name, value).map_err(CacheError::disk)?;
        }
        Ok(())
    }

    /// Stores codec bytes under a key (replacing what was there) as the newest entry.
    pub(super) fn insert(&mut self, key: CacheKey, body: &[u8], expires: u64) -> Result<()> {
        self.delete(&key)?;
        let seq = self.next_seq;
        let value = layout::value(seq, expires, body);
        let name = key.as_bytes().as_slice();
        self.entries
            .insert(name, value.as_slice())
            .map_err(CacheError::disk)?;
        self.order.insert(seq, name).map_err(CacheError::disk)?;
        self.next_seq += 1;
        self.bytes += layout::stored_size(value.len());
        self.count += 1;
        self.written += 1;
        Ok(())
    }

    fn delete(&mut self, key: &CacheKey) -> Result<()> {
        self.remove(key).map(|_| ())
    }

    fn clear(&mut self) -> Result<()> {
        self.entries
            .retain(|_, _| false)
            .map_err(CacheError::disk)?;
        self.order.retain(|_, _| false).map_err(CacheError::disk)?;
        self.bytes = 0;
        self.count = 0;
        Ok(())
    }

    /// Oldest first: removes entries while beyond the size bound, and any expired
    /// ones at the front of the order.
    fn evict(&mut self, max_bytes: u64, now: u64) -> Result<()> {
        while let Some(oldest) = self.oldest()? {
            let over = self.bytes > max_bytes;
            if !over && !self.expired(&oldest, now)? {
                break;
            }
            let removed = match CacheKey::from_slice(&oldest) {
                Some(key) => self.remove(&key)?,
                None => false,
            };
            if removed {
                self.evicted += 1;
            } else {
                // An order record without its entry: drop the record alone.
                self.order.pop_first().map_err(CacheError::disk)?;
            }
        }
        Ok(())
    }

    /// The key at the front of the eviction order.
    fn oldest(&self) -> Result<Option<Vec<u8>>> {
        Ok(self
            .order
            .first()
            .map_err(CacheError::disk)?
            .map(|(_, key)| key.value().to_vec()))
    }

    /// Whether the entry under `key` is gone at `now` (missing counts as expired).
    fn expired(&self, key: &[u8], now: u64) -> Result<bool> {
        Ok(self
            .entries
            .get(key)
            .map_err(CacheError::disk)?
            .is_none_or(|v| layout::expired_at(v.value(), now)))
    }

    /// Removes a key and its order record; returns whether it was there.
    fn remove(&mut self, key: &CacheKey) -> Result<bool> {
        let old = self
            .entries
            .remove(key.as_bytes().as_slice())
            .map_err(CacheError::disk)?
            .map(|v| {
                let v = v.value();
                (
                    layout::header(v).map(|(seq, _)| seq).ok(),
                    layout::stored_size(v.len()),
                )
            });
        let Some((seq, size)) = old else {
            return Ok(false);
        };
        if let Some(seq) = seq {
            self.order.remove(seq).map_err(CacheError::disk)?;
        }
        self.bytes = self.bytes.saturating_sub(size);
        self.count = self.count.saturating_sub(1);
        Ok(true)
    }
}
