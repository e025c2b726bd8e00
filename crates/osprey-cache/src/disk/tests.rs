use super::*;
use crate::KeySpace;

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
    let got = disk.get_many(&[key(1), key(2)]);
    assert_eq!(got[0].as_ref(), Some(&entry(1)));
    assert!(got[1].is_none());
    assert_eq!(disk.snapshot().entries, Some(1));
}

#[tokio::test]
async fn evicts_oldest_beyond_its_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let per_entry = stored_size(ENTRY_HEADER + codec::encode(&entry(0)).len());
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
    let got = disk.get_many(&(0..25).map(key).collect::<Vec<_>>());
    assert!(got[..15].iter().all(Option::is_none), "oldest evicted");
    assert!(got[15..].iter().all(Option::is_some), "newest kept");
}

#[tokio::test]
async fn expired_entries_read_as_misses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = DiskTier::open(&config(64 << 20, 1), &dir.path().join("c.redb")).expect("open");
    disk.put(key(1), entry(1));
    disk.flush().await;
    assert!(disk.get_many(&[key(1)])[0].is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(disk.get_many(&[key(1)])[0].is_none());
}

#[tokio::test]
async fn corrupt_entries_are_dropped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = DiskTier::open(&config(64 << 20, 0), &dir.path().join("c.redb")).expect("open");
    let mut bytes = codec::encode(&entry(5));
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    disk.put_raw(key(5), bytes);
    disk.put_raw(key(6), vec![1, 2, 3]);
    disk.flush().await;
    assert!(disk.get_many(&[key(5), key(6)]).iter().all(Option::is_none));
    assert_eq!(disk.snapshot().corrupt, 2);
    disk.flush().await;
    assert_eq!(disk.snapshot().entries, Some(0), "corrupt entries deleted");
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
    assert!(disk.get_many(&[key(1)])[0].is_some());
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
    assert!(disk.get_many(&[key(1)])[0].is_none());
}
