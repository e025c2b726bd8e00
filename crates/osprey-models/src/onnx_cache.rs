//! The optimised graph kept on disk between starts.
//!
//! Optimising a graph is most of an onnxruntime session's set-up time. The result
//! depends on the graph file, the onnxruntime library and the CPU, so it is kept
//! under a name derived from all three, in `$OSPREY_CACHE_DIR/ort/` (by default
//! `$XDG_CACHE_HOME/osprey` or `~/.cache/osprey`). A cache that cannot be read or
//! written only costs the optimisation again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};
use std::time::UNIX_EPOCH;

/// Where the optimised form of `graph`, run by the library at `library`, is kept.
pub(crate) fn path_for(graph: &Path, library: &Path) -> Option<PathBuf> {
    let dir = cache_dir()?.join("ort");
    let mut key = blake3::Hasher::new_derive_key("osprey optimised onnx graph v1");
    for file in [graph, library] {
        let file = file.canonicalize().ok()?;
        let meta = std::fs::metadata(&file).ok()?;
        let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        key.update(file.as_os_str().as_encoded_bytes());
        key.update(&meta.len().to_le_bytes());
        key.update(&mtime.as_nanos().to_le_bytes());
    }
    key.update(cpu_features().as_bytes());
    Some(dir.join(format!("{}.ort", &key.finalize().to_hex()[..32])))
}

fn cache_dir() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("OSPREY_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("osprey")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("osprey")))
}

/// The instruction sets onnxruntime picks kernels and layouts by.
fn cpu_features() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            (
                "avx512vnni",
                std::arch::is_x86_feature_detected!("avx512vnni"),
            ),
            ("avxvnni", std::arch::is_x86_feature_detected!("avxvnni")),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(",")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH.to_string()
    }
}

/// An optimised graph's bytes: its cache file mapped into memory (the page
/// cache's pages, no copy: reading a 90 MB graph into a buffer took about 50 ms
/// of a 230 ms start, mapping it 4 ms), or the bytes just made when the file
/// could not be saved.
pub(crate) enum GraphBytes {
    Mapped(memmap2::Mmap),
    Made(Vec<u8>),
}

impl std::ops::Deref for GraphBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Mapped(m) => m,
            Self::Made(v) => v,
        }
    }
}

impl GraphBytes {
    /// Drops a mapped graph's pages from the process's memory (they stay in the
    /// page cache). Sessions that repacked their weights no longer read the
    /// originals, about the model's size; what they still read (biases, norms,
    /// the embedding rows in use) comes back from the file on first touch.
    pub(crate) fn release_resident(&self) {
        if let Self::Mapped(m) = self {
            #[allow(unsafe_code)]
            // SAFETY: a shared read-only mapping of a file that is never changed
            // in place (see `map`): a page dropped here reads back the same bytes.
            if let Err(e) = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) } {
                tracing::debug!(error = %e, "the mapped graph's pages stay resident");
            }
        }
    }
}

/// The graphs in memory now, by cache path: sessions read their weights from
/// these bytes in place, so every session of one graph (a model's replicas, one
/// added later by the autoscaler) shares one copy. Weak: the bytes go with the
/// last session.
fn in_memory() -> MutexGuard<'static, HashMap<PathBuf, Weak<GraphBytes>>> {
    static GRAPHS: LazyLock<Mutex<HashMap<PathBuf, Weak<GraphBytes>>>> =
        LazyLock::new(Mutex::default);
    GRAPHS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The graph at `path`: the bytes sessions already read, or else the file.
pub(crate) fn read(path: &Path) -> Option<Arc<GraphBytes>> {
    let mut graphs = in_memory();
    if let Some(bytes) = graphs.get(path).and_then(Weak::upgrade) {
        return Some(bytes);
    }
    graphs.retain(|_, w| w.strong_count() > 0);
    let bytes = Arc::new(map(path)?);
    graphs.insert(path.to_owned(), Arc::downgrade(&bytes));
    Some(bytes)
}

fn map(path: &Path) -> Option<GraphBytes> {
    let file = std::fs::File::open(path).ok()?;
    #[allow(unsafe_code)]
    // SAFETY: a cache file is written whole under a temporary name and renamed
    // into place, and removed by unlinking; none is ever changed in place, so the
    // mapped bytes stay as they were (a replaced or removed file's inode lives
    // on while it is mapped). The files are private to the user (0600).
    let mapped = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.ok()?;
    (!mapped.is_empty()).then_some(GraphBytes::Mapped(mapped))
}

/// Saves `bytes`, just optimised, at `path` and shares them with later sessions:
/// the saved file mapped, or the bytes themselves if it could not be saved.
pub(crate) fn keep(path: &Path, bytes: Vec<u8>) -> Arc<GraphBytes> {
    write(path, &bytes);
    let kept = Arc::new(map(path).unwrap_or(GraphBytes::Made(bytes)));
    in_memory().insert(path.to_owned(), Arc::downgrade(&kept));
    kept
}

/// Writes through a temporary file and a rename, so a reader never sees half a graph.
pub(crate) fn write(path: &Path, bytes: &[u8]) {
    let written = (|| -> std::io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(bytes)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    })();
    if let Err(e) = written {
        tracing::debug!(path = %path.display(), error = %e, "optimised graph not cached");
    }
}

pub(crate) fn forget(path: &Path) {
    in_memory().remove(path);
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_follows_the_graph_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, lib) = (
            dir.path().join("a.onnx"),
            dir.path().join("b.onnx"),
            dir.path().join("lib.so"),
        );
        for f in [&a, &b, &lib] {
            std::fs::write(f, b"x").expect("write");
        }
        // No cache directory at all (no HOME): nothing to check.
        let Some(pa) = path_for(&a, &lib) else { return };
        assert_eq!(path_for(&a, &lib), Some(pa.clone()));
        assert_ne!(path_for(&b, &lib), Some(pa.clone()));
        std::fs::write(&a, b"xy").expect("rewrite");
        assert_ne!(path_for(&a, &lib), Some(pa));
    }

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ort").join("g.ort");
        let kept = keep(&path, b"graph".to_vec());
        assert!(matches!(*kept, GraphBytes::Mapped(_)));
        drop(kept);
        assert_eq!(read(&path).as_deref().map(|b| &**b), Some(&b"graph"[..]));
        forget(&path);
        assert!(read(&path).is_none());
    }

    #[test]
    fn sessions_of_one_graph_share_its_bytes_while_any_holds_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shared.ort");
        write(&path, b"weights");
        let first = read(&path).expect("read");
        let second = read(&path).expect("read again");
        assert!(Arc::ptr_eq(&first, &second), "one copy for both");
        assert!(matches!(*first, GraphBytes::Mapped(_)));
        // Replaced while mapped: the sessions holding it keep the old bytes.
        write(&path, b"new weights");
        assert_eq!(&**first, b"weights");
        drop((first, second));
        // Gone with its last holder: the next read is the file as it is now.
        assert_eq!(
            read(&path).as_deref().map(|b| &**b),
            Some(&b"new weights"[..])
        );
    }
}
