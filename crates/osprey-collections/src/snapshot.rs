//! Index snapshots: the graph saved on shutdown so the next start skips the
//! rebuild.
//!
//! Two files in the collection's directory, each written to a temporary name,
//! fsynced and renamed into place: `index.graph` (the graph, with the vectors)
//! and `index.meta` (the operation counter it reflects, the graph file's length
//! and BLAKE3 hash, and which point each graph key stands for, then a hash of
//! all that). A snapshot is used only if both files check out and its counter
//! is not past the store's; the writes after it are replayed from the store
//! (every stored point carries the operation that last wrote it). Anything
//! else means a rebuild from the store, which is always the authority.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{CollectionError, Result};
use crate::index::{Codes, VectorIndex};
use crate::point::{Distance, PointId};

const INDEX_FILE: &str = "index.graph";
const META_FILE: &str = "index.meta";
/// The graph file of releases that used usearch; never read, only removed.
const LEGACY_INDEX_FILE: &str = "index.usearch";
const MAGIC: &[u8; 8] = b"OSPSNAP1";

/// A loaded snapshot: the graph and, for each point, its key in it.
pub(crate) struct Loaded {
    pub index: VectorIndex,
    pub keys: HashMap<PointId, u64>,
    /// The operation the graph reflects.
    pub op: u64,
}

/// Saves the graph and its key map as of operation `op`.
pub(crate) fn save(
    dir: &Path,
    op: u64,
    index: &VectorIndex,
    keys: impl Iterator<Item = (u64, PointId)>,
) -> Result<()> {
    let index_tmp = dir.join(format!("{INDEX_FILE}.tmp"));
    index.save(&index_tmp)?;
    let (len, hash) = hash_file(&index_tmp)?;
    File::open(&index_tmp)?.sync_all()?;

    let mut body = Vec::new();
    body.extend_from_slice(MAGIC);
    body.extend_from_slice(&op.to_le_bytes());
    body.extend_from_slice(&len.to_le_bytes());
    body.extend_from_slice(hash.as_bytes());
    let mut entries = Vec::new();
    let mut count = 0u64;
    for (key, id) in keys {
        entries.extend_from_slice(&key.to_le_bytes());
        let k = id.to_key();
        // Id keys are 9 or 17 bytes.
        entries.push(k.len() as u8);
        entries.extend_from_slice(&k);
        count += 1;
    }
    body.extend_from_slice(&count.to_le_bytes());
    body.extend_from_slice(&entries);
    let check = blake3::hash(&body);
    body.extend_from_slice(check.as_bytes());

    let meta_tmp = dir.join(format!("{META_FILE}.tmp"));
    write_synced(&meta_tmp, &body)?;
    // The graph first: a meta file always names a graph at least as new as itself,
    // and the hash catches a graph that is newer.
    fs::rename(&index_tmp, dir.join(INDEX_FILE))?;
    fs::rename(&meta_tmp, dir.join(META_FILE))?;
    sync_dir(dir)?;
    Ok(())
}

/// Loads the snapshot if there is one that reflects an operation up to `op`
/// (the caller replays the later ones).
/// `Ok(None)` when there is none or it does not fit; errors are only I/O errors
/// worth reporting (the caller rebuilds either way).
pub(crate) fn load(
    dir: &Path,
    op: u64,
    dims: usize,
    distance: Distance,
    codes: Codes,
) -> Result<Option<Loaded>> {
    let meta_path = dir.join(META_FILE);
    let body = match fs::read(&meta_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(meta) = parse_meta(&body) else {
        tracing::warn!(path = %meta_path.display(), "index snapshot metadata is corrupt; rebuilding");
        return Ok(None);
    };
    if meta.op > op {
        tracing::warn!(
            snapshot_op = meta.op,
            store_op = op,
            "index snapshot is newer than the store; rebuilding"
        );
        return Ok(None);
    }
    let index_path = dir.join(INDEX_FILE);
    let (len, hash) = match hash_file(&index_path) {
        Ok(x) => x,
        Err(_) => return Ok(None),
    };
    if len != meta.index_len || hash.as_bytes() != &meta.index_hash {
        tracing::warn!("index snapshot does not match its metadata; rebuilding");
        return Ok(None);
    }
    let index = match VectorIndex::restore(&index_path, dims, distance, codes) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(error = %e, "index snapshot could not be loaded; rebuilding");
            return Ok(None);
        }
    };
    Ok(Some(Loaded {
        index,
        keys: meta.keys,
        op: meta.op,
    }))
}

/// Removes the snapshot files (a snapshot that does not fit is never used,
/// this only frees the disk).
pub(crate) fn remove(dir: &Path) {
    for f in [INDEX_FILE, META_FILE, LEGACY_INDEX_FILE] {
        let _ = fs::remove_file(dir.join(f));
    }
}

/// Removes what a save interrupted by a crash left behind.
pub(crate) fn remove_partial(dir: &Path) {
    for f in [INDEX_FILE, META_FILE] {
        let _ = fs::remove_file(dir.join(format!("{f}.tmp")));
    }
}

struct Meta {
    op: u64,
    index_len: u64,
    index_hash: [u8; 32],
    keys: HashMap<PointId, u64>,
}

fn parse_meta(body: &[u8]) -> Option<Meta> {
    let (content, check) = body.split_at_checked(body.len().checked_sub(32)?)?;
    if blake3::hash(content).as_bytes() != check {
        return None;
    }
    let rest = content.strip_prefix(MAGIC.as_slice())?;
    let (op, rest) = take_u64(rest)?;
    let (index_len, rest) = take_u64(rest)?;
    let (hash, rest) = rest.split_at_checked(32)?;
    let (count, mut rest) = take_u64(rest)?;
    let mut keys = HashMap::with_capacity(usize::try_from(count).ok()?.min(1 << 24));
    for _ in 0..count {
        let (key, r) = take_u64(rest)?;
        let (&n, r) = r.split_first()?;
        let (id, r) = r.split_at_checked(n as usize)?;
        keys.insert(PointId::from_key(id)?, key);
        rest = r;
    }
    if !rest.is_empty() {
        return None;
    }
    Some(Meta {
        op,
        index_len,
        index_hash: hash.try_into().ok()?,
        keys,
    })
}

fn take_u64(b: &[u8]) -> Option<(u64, &[u8])> {
    let (x, rest) = b.split_at_checked(8)?;
    Some((u64::from_le_bytes(x.try_into().ok()?), rest))
}

fn hash_file(path: &Path) -> Result<(u64, blake3::Hash)> {
    let mut hasher = blake3::Hasher::new();
    let mut f = File::open(path)?;
    let len = std::io::copy(&mut f, &mut hasher)?;
    Ok((len, hasher.finalize()))
}

pub(crate) fn write_synced(path: &PathBuf, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Makes renames and removals in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CollectionError::Storage(format!("syncing {}: {e}", dir.display())))
}
