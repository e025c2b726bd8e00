//! L2: a local redb database. Chosen for being one crash-safe file (a torn write
//! never corrupts what was committed), pure Rust, with a stable format. The size
//! bound and TTL are ours: entries are indexed by insertion order and the oldest go
//! first (FIFO), in the same transaction that writes new ones.
//!
//! Reads run on a blocking thread, one hop for all the keys of a request: a lookup
//! is usually a page-cache hit, but a cold page is a disk read, and that must not
//! stall the async runtime. Writes go through a bounded queue to one writer thread
//! that commits in groups; when the queue is full the write is dropped and counted.

mod layout;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use redb::{Database, DatabaseError, ReadableDatabase, StorageError};
use tokio::sync::oneshot;

use self::layout::ENTRIES;
use self::writer::{Op, Tables, Writer};
use crate::clock::{self, SharedClock};
use crate::stats::{Tier, TierHealth, TierSnapshot, TierStats};
use crate::{CacheError, CacheKey, DiskConfig, Entry, Result};

pub struct DiskTier {
    db: Arc<Database>,
    path: PathBuf,
    bounds: Arc<writer::Bounds>,
    stats: Arc<TierStats>,
    sizes: Arc<Sizes>,
    clock: SharedClock,
    ops: Mutex<Option<SyncSender<Op>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Default)]
struct Sizes {
    bytes: AtomicU64,
    entries: AtomicU64,
    /// The last write error, for health.
    failing: AtomicBool,
}

/// What one key's read found.
enum Read {
    Hit(Entry),
    Miss,
    Corrupt(CacheError),
}

impl DiskTier {
    /// Opens (or creates) the database. A file that is not a readable database is
    /// moved aside (`<path>.corrupt`), counted, and replaced by an empty one.
    /// Blocks on file I/O: from async code, call it in `spawn_blocking`.
    pub fn open(config: &DiskConfig, path: &Path) -> Result<Self> {
        Self::open_with_clock(config, path, clock::system())
    }

    /// [`DiskTier::open`] with the clock that stamps and checks expiry.
    pub fn open_with_clock(config: &DiskConfig, path: &Path, clock: SharedClock) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let stats = Arc::new(TierStats::new(Tier::Disk));
        let db = Arc::new(open_or_replace(path, &stats)?);
        let sizes = Arc::new(load_sizes(&db)?);
        let (tx, rx) = sync_channel(config.write_queue.max(1));
        let bounds = Arc::new(writer::Bounds {
            max_bytes: AtomicU64::new(config.max_bytes),
            ttl_ms: AtomicU64::new(config.ttl_secs.saturating_mul(1000)),
        });
        let writer = Writer {
            db: db.clone(),
            stats: stats.clone(),
            sizes: sizes.clone(),
            clock: clock.clone(),
            bounds: bounds.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("osprey-disk-cache".into())
            .spawn(move || writer.run(rx))?;
        Ok(Self {
            db,
            path: path.to_path_buf(),
            bounds,
            stats,
            sizes,
            clock,
            ops: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(handle)),
        })
    }

    /// New size and entry lifetime, applied from the next write: a smaller size
    /// evicts the oldest entries then; entries already written keep their expiry.
    pub fn set_bounds(&self, max_bytes: u64, ttl_secs: u64) {
        self.bounds.max_bytes.store(max_bytes, Ordering::Relaxed);
        self.bounds
            .ttl_ms
            .store(ttl_secs.saturating_mul(1000), Ordering::Relaxed);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks up every key in one blocking-thread hop. Expired or corrupt entries
    /// read as misses (corrupt ones are counted and deleted); a failed read makes
    /// every key a miss.
    pub async fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Entry>> {
        let t = Instant::now();
        let (db, wanted, now) = (self.db.clone(), keys.to_vec(), self.clock.now_ms());
        let reads = tokio::task::spawn_blocking(move || read_many(&db, &wanted, now))
            .await
            .unwrap_or_else(|e| Err(CacheError::disk(e)));
        let reads = match reads {
            Ok(reads) => reads,
            Err(e) => {
                tracing::warn!(error = %e, "disk cache read failed");
                self.stats.error(keys.len() as u64);
                return vec![None; keys.len()];
            }
        };
        let found: Vec<Option<Entry>> = reads
            .into_iter()
            .zip(keys)
            .map(|(read, key)| match read {
                Read::Hit(entry) => Some(entry),
                Read::Miss => None,
                Read::Corrupt(e) => {
                    tracing::warn!(error = %e, "dropping a corrupt disk cache entry");
                    self.stats.corrupt();
                    self.send(Op::Delete(*key));
                    None
                }
            })
            .collect();
        self.stats.answered(&found, t);
        found
    }

    /// Drops an entry that read fine but cannot be served (see [`Entry::check`]).
    pub fn reject(&self, key: CacheKey) {
        self.stats.corrupt();
        self.send(Op::Delete(key));
    }

    /// Queues a write; never blocks.
    pub fn put(&self, key: CacheKey, entry: Entry) {
        self.send(Op::Put(key, entry, 0));
    }

    /// Queues a write of an entry that must be gone by `deadline` (unix ms, 0 = no
    /// bound) even when this tier's TTL would keep it longer.
    pub fn put_until(&self, key: CacheKey, entry: Entry, deadline: u64) {
        self.send(Op::Put(key, entry, deadline));
    }

    /// A stored entry's expiry (unix ms, 0 = never), if it is there (for tools
    /// and tests; blocks on a read, like `get_many`).
    pub async fn expiry(&self, key: CacheKey) -> Result<Option<u64>> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_read().map_err(CacheError::disk)?;
            let table = tx.open_table(ENTRIES).map_err(CacheError::disk)?;
            let value = table
                .get(key.as_bytes().as_slice())
                .map_err(CacheError::disk)?;
            value
                .map(|v| layout::header(v.value()).map(|(_, expires)| expires))
                .transpose()
        })
        .await
        .map_err(CacheError::disk)?
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
        if self.send_waiting(Op::Flush(tx)).await {
            let _ = rx.await;
        }
    }

    pub async fn clear(&self) -> Result<()> {
        let stopped = || CacheError::Disk("the disk cache writer has stopped".into());
        let (tx, rx) = oneshot::channel();
        if !self.send_waiting(Op::Clear(tx)).await {
            return Err(stopped());
        }
        rx.await.map_err(|_| stopped())?
    }

    /// Control messages wait for room rather than being dropped; when the queue is
    /// full, the wait happens on a blocking thread, never on the runtime.
    async fn send_waiting(&self, op: Op) -> bool {
        let tx = self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(tx) = tx else { return false };
        match tx.try_send(op) {
            Ok(()) => true,
            Err(TrySendError::Disconnected(_)) => false,
            Err(TrySendError::Full(op)) => tokio::task::spawn_blocking(move || tx.send(op))
                .await
                .is_ok_and(|sent| sent.is_ok()),
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
        s.capacity_bytes = Some(self.bounds.max_bytes.load(Ordering::Relaxed));
        s
    }

    /// Stops the writer after it has committed what is queued. Blocks until then:
    /// from async code, call it in `spawn_blocking`.
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

/// Opens the database; one whose contents cannot be read (corrupt, or an old
/// format) is moved aside, counted, and replaced by an empty one. Anything else
/// (held by another process, no permission, an I/O error) is an error, and the
/// file stays where it is: it may be fine once the cause is fixed.
fn open_or_replace(path: &Path, stats: &TierStats) -> Result<Database> {
    match open_db(path)? {
        Opened::Db(db) => Ok(db),
        Opened::Unreadable(e) => {
            let aside = free_aside_name(path);
            tracing::warn!(path = %path.display(), error = %e, moved_to = %aside.display(),
                "disk cache unreadable: moved aside, starting empty");
            stats.corrupt();
            std::fs::rename(path, &aside)?;
            match open_db(path)? {
                Opened::Db(db) => Ok(db),
                Opened::Unreadable(e) => Err(CacheError::disk(e)),
            }
        }
    }
}

enum Opened {
    Db(Database),
    /// The file is there but its contents are not a database this redb reads.
    Unreadable(DatabaseError),
}

fn open_db(path: &Path) -> Result<Opened> {
    create_private(path)?;
    match Database::builder()
        .set_cache_size(32 * 1024 * 1024)
        .create(path)
    {
        Ok(db) => Ok(Opened::Db(db)),
        Err(DatabaseError::DatabaseAlreadyOpen) => Err(CacheError::DiskInUse {
            path: path.display().to_string(),
        }),
        Err(e) if unreadable(&e) => Ok(Opened::Unreadable(e)),
        Err(e) => Err(CacheError::disk(e)),
    }
}

/// Whether the file's contents are the problem: corrupt, an old format, or not a
/// redb database at all (which redb reports as invalid data).
fn unreadable(e: &DatabaseError) -> bool {
    match e {
        DatabaseError::UpgradeRequired(_) | DatabaseError::Storage(StorageError::Corrupted(_)) => {
            true
        }
        DatabaseError::Storage(StorageError::Io(io)) => {
            io.kind() == std::io::ErrorKind::InvalidData
        }
        _ => false,
    }
}

/// `<name>.corrupt`, or `<name>.corrupt.N` with the first N not taken: each file
/// moved aside is kept for whoever wants to look at it.
fn free_aside_name(path: &Path) -> std::path::PathBuf {
    let first = path.with_extension("corrupt");
    std::iter::once(first.clone())
        .chain((1..).map(|n| {
            let mut name = first.clone().into_os_string();
            name.push(format!(".{n}"));
            std::path::PathBuf::from(name)
        }))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// Creates the file readable and writable by its owner only (0600) when it does not
/// exist yet: cached vectors reveal what was embedded. redb initializes an empty
/// file as a new database. An existing file keeps the mode it was given.
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates the tables of a new database and reads the totals of an existing one.
fn load_sizes(db: &Database) -> Result<Sizes> {
    let tx = db.begin_write().map_err(CacheError::disk)?;
    let totals = Tables::open(&tx)?.totals();
    tx.commit().map_err(CacheError::disk)?;
    Ok(Sizes {
        bytes: AtomicU64::new(totals.bytes),
        entries: AtomicU64::new(totals.entries),
        failing: AtomicBool::new(false),
    })
}

/// Reads every key in one read transaction (on a blocking thread).
fn read_many(db: &Database, keys: &[CacheKey], now: u64) -> Result<Vec<Read>> {
    let tx = db.begin_read().map_err(CacheError::disk)?;
    let table = tx.open_table(ENTRIES).map_err(CacheError::disk)?;
    keys.iter()
        .map(|key| {
            let value = table
                .get(key.as_bytes().as_slice())
                .map_err(CacheError::disk)?;
            Ok(match value.map(|v| layout::parse(v.value(), now)) {
                None | Some(Ok(None)) => Read::Miss,
                Some(Ok(Some(entry))) => Read::Hit(entry),
                Some(Err(e)) => Read::Corrupt(e),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
