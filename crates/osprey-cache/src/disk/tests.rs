use std::time::Duration;

use super::*;
use crate::testkit::ManualClock;
use crate::{KeySpace, codec};

fn config(max_bytes: u64, ttl_secs: u64) -> DiskConfig {
    DiskConfig {
        path: None,
        max_bytes,
        ttl_secs,
        write_queue: 1024,
    }
}

fn entry(seed: u32) -> Entry {
    Entry::new(
        (0..384)
            .map(|i| ((i as u32 * 31 + seed) as f32).sin())
            .collect::<Vec<_>>(),
        seed,
    )
}

fn key(i: u32) -> CacheKey {
    KeySpace::new("m", "r").key(&format!("text {i}"))
}

#[tokio::test]
async fn survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cache.redb");
    {
        let disk = DiskTier::open(&config(64 << 20, 0), &path).expect("open");
        disk.put(key(1), entry(1));
        disk.flush().await;
        disk.close();
    }
    let disk = DiskTier::open(&config(64 << 20, 0), &path).expect("reopen");
    let got = disk.get_many(&[key(1), key(2)]).await;
    assert_eq!(got[0].as_ref(), Some(&entry(1)));
    assert!(got[1].is_none());
    assert_eq!(disk.snapshot().entries, Some(1));
}

#[tokio::test]
async fn evicts_oldest_beyond_its_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let per_entry = layout::stored_size(layout::ENTRY_HEADER + codec::encode(&entry(0)).len());
    let disk =
        DiskTier::open(&config(per_entry * 10, 0), &dir.path().join("c.redb")).expect("open");
    for i in 0..25 {
        disk.put(key(i), entry(i));
    }
    disk.flush().await;
    let s = disk.snapshot();
    assert_eq!(s.entries, Some(10));
    assert!(s.bytes.expect("bytes") <= per_entry * 10);
    assert_eq!(s.evictions, 15);
    let got = disk.get_many(&(0..25).map(key).collect::<Vec<_>>()).await;
    assert!(got[..15].iter().all(Option::is_none), "oldest evicted");
    assert!(got[15..].iter().all(Option::is_some), "newest kept");
}

#[tokio::test]
async fn expired_entries_read_as_misses_and_go_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new();
    let path = dir.path().join("c.redb");
    let disk =
        DiskTier::open_with_clock(&config(64 << 20, 1), &path, clock.shared()).expect("open");
    disk.put(key(1), entry(1));
    disk.flush().await;
    clock.advance(Duration::from_millis(999));
    assert!(
        disk.get_many(&[key(1)]).await[0].is_some(),
        "alive until its TTL"
    );
    clock.advance(Duration::from_millis(1));
    assert!(
        disk.get_many(&[key(1)]).await[0].is_none(),
        "expired at its TTL"
    );
    assert_eq!(disk.snapshot().entries, Some(1), "still stored");
    // The next commit evicts the expired entry at the front of the order.
    disk.put(key(2), entry(2));
    disk.flush().await;
    let s = disk.snapshot();
    assert_eq!((s.entries, s.evictions), (Some(1), 1), "{s:?}");
    assert!(disk.get_many(&[key(2)]).await[0].is_some());
}

/// Writes codec bytes as they would be found on disk, through the writer's own
/// table code, so a test can plant a damaged entry.
fn plant(disk: &DiskTier, key: CacheKey, codec_bytes: &[u8]) {
    let tx = disk.db.begin_write().expect("write transaction");
    {
        let mut tables = Tables::open(&tx).expect("tables");
        tables.insert(key, codec_bytes, 0).expect("insert");
        tables.store().expect("totals");
    }
    tx.commit().expect("commit");
}

#[tokio::test]
async fn corrupt_entries_are_dropped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = DiskTier::open(&config(64 << 20, 0), &dir.path().join("c.redb")).expect("open");
    let mut bytes = codec::encode(&entry(5));
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    plant(&disk, key(5), &bytes);
    plant(&disk, key(6), &[1, 2, 3]);
    assert!(
        disk.get_many(&[key(5), key(6)])
            .await
            .iter()
            .all(Option::is_none)
    );
    assert_eq!(disk.snapshot().corrupt, 2);
    disk.flush().await;
    assert_eq!(disk.snapshot().entries, Some(0), "corrupt entries deleted");
    assert!(
        disk.get_many(&[key(5), key(6)])
            .await
            .iter()
            .all(Option::is_none)
    );
    assert_eq!(disk.snapshot().corrupt, 2, "and not read again");
}

#[tokio::test]
async fn a_damaged_file_is_moved_aside() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.redb");
    std::fs::write(&path, vec![0xAB; 64 * 1024]).expect("write garbage");
    let disk = DiskTier::open(&config(64 << 20, 0), &path).expect("open recovers");
    assert_eq!(disk.snapshot().corrupt, 1);
    assert!(path.with_extension("corrupt").exists());
    disk.put(key(1), entry(1));
    disk.flush().await;
    assert!(disk.get_many(&[key(1)]).await[0].is_some());
    drop(disk);
    // A second damaged file is moved aside beside the first, which is kept.
    std::fs::write(&path, vec![0xCD; 64 * 1024]).expect("write garbage");
    let again = DiskTier::open(&config(64 << 20, 0), &path).expect("open recovers");
    assert_eq!(again.snapshot().corrupt, 1);
    let first = std::fs::read(path.with_extension("corrupt")).expect("the first kept");
    assert_eq!(first.first(), Some(&0xAB));
    let second = std::fs::read(dir.path().join("c.corrupt.1")).expect("the second");
    assert_eq!(second.first(), Some(&0xCD));
}

#[tokio::test]
async fn a_file_that_cannot_be_opened_is_an_error_and_stays_put() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Opening a directory as the database fails with an I/O error, not corruption
    // (as a permission or disk error would).
    let path = dir.path().join("c.redb");
    std::fs::create_dir(&path).expect("a directory in the way");
    let opened = DiskTier::open(&config(64 << 20, 0), &path);
    assert!(opened.is_err(), "an I/O error must not be papered over");
    assert!(path.is_dir(), "left where it was");
    assert!(
        !path.with_extension("corrupt").exists(),
        "nothing moved aside"
    );
}

#[tokio::test]
async fn a_second_opener_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.redb");
    let _first = DiskTier::open(&config(64 << 20, 0), &path).expect("open");
    assert!(matches!(
        DiskTier::open(&config(64 << 20, 0), &path),
        Err(CacheError::DiskInUse { .. })
    ));
}

#[tokio::test]
async fn clear_empties_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = DiskTier::open(&config(64 << 20, 0), &dir.path().join("c.redb")).expect("open");
    for i in 0..5 {
        disk.put(key(i), entry(i));
    }
    disk.clear().await.expect("clear");
    assert_eq!(disk.snapshot().entries, Some(0));
    assert!(disk.get_many(&[key(1)]).await[0].is_none());
}

/// Holds the database's write lock from another thread so the writer stalls, until
/// released (or for two seconds at most, so a regression fails rather than hangs).
fn stall_writer(disk: &DiskTier) -> std::sync::mpsc::Sender<()> {
    let db = disk.db.clone();
    let (locked, is_locked) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        let tx = db.begin_write().expect("write lock");
        locked.send(()).expect("locked");
        let _ = released.recv_timeout(Duration::from_secs(2));
        drop(tx);
    });
    is_locked.recv().expect("locked");
    release
}

/// Puts until one is dropped: the queue is full.
fn fill(disk: &DiskTier, from: &mut u32) {
    let dropped = disk.snapshot().dropped_writes;
    while disk.snapshot().dropped_writes == dropped {
        disk.put(key(*from), entry(*from));
        *from += 1;
    }
}

// The default current-thread runtime: a blocking send would stall its timers too.
#[tokio::test]
async fn a_full_queue_never_blocks_the_runtime() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = DiskConfig {
        write_queue: 1,
        ..config(64 << 20, 0)
    };
    let disk = DiskTier::open(&cfg, &dir.path().join("c.redb")).expect("open");
    let release = stall_writer(&disk);
    let mut next = 0;
    fill(&disk, &mut next);
    // By now the writer has taken its group and waits for the lock; fill again.
    std::thread::sleep(Duration::from_millis(50));
    fill(&disk, &mut next);

    let started = Instant::now();
    let flushed = tokio::time::timeout(Duration::from_millis(100), disk.flush()).await;
    assert!(flushed.is_err(), "flush waits for the stalled writer");
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(1),
        "the runtime stalled for {waited:?}"
    );

    release.send(()).expect("release");
    disk.flush().await;
    assert!(
        disk.get_many(&[key(0)]).await[0].is_some(),
        "queued before the flush"
    );
    disk.clear().await.expect("clear");
    assert_eq!(disk.snapshot().entries, Some(0));
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_database_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cache.redb");
    let tier = DiskTier::open(&config(1 << 20, 0), &path).expect("open");
    tier.put(key(1), entry(1));
    tier.flush().await;
    let mode = std::fs::metadata(&path).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}
