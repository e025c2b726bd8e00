//! The collection manager: names, directories and the map of open collections.
//!
//! Layout: `<path>/<escaped name>/points.redb` (plus the index snapshot). A
//! collection is created in `<path>/.tmp-*` and renamed into place, and deleted
//! by renaming it to `<path>/.trash-*` before removing it, so a crash leaves
//! either the whole collection or none; leftovers are cleared on open.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::collection::{Collection, Limits};
use crate::config::CollectionsConfig;
use crate::error::{CollectionError, Result};
use crate::filter::Filter;
use crate::indexer::{Backpressure, Indexer, OpenMap};
use crate::point::{
    CollectionInfo, CollectionParams, Point, PointId, Record, ScoredPoint, SearchRequest, Selector,
    UpdateResult,
};
use crate::snapshot::sync_dir;
use crate::store::{DB_FILE, Store};

const TMP_PREFIX: &str = ".tmp-";
const TRASH_PREFIX: &str = ".trash-";
/// Longest escaped name used as a directory name; longer names get a hash.
const MAX_DIR_NAME: usize = 200;
/// Longest collection name, in characters.
const MAX_NAME_CHARS: usize = 255;

/// All collections. Cheap to share (`Send + Sync`); every method blocks on
/// disk or CPU work, so async callers use `spawn_blocking`.
pub struct Collections {
    root: PathBuf,
    config: CollectionsConfig,
    open: Arc<OpenMap>,
    /// Serializes creating and deleting.
    layout: Mutex<()>,
    pressure: Arc<Backpressure>,
    /// Stops the indexer thread when the collections are dropped.
    _indexer: Indexer,
}

impl Collections {
    /// Opens every collection under `config.path` (creating the directory),
    /// loading each graph from its snapshot. Points the snapshot lacks (all of
    /// them without one) are searchable at once and indexed in the background;
    /// they do not count against `max_unindexed_bytes`, so writes go on at once.
    pub fn open(config: &CollectionsConfig) -> Result<Self> {
        let root = config.path.clone();
        let pressure = Arc::new(Backpressure::new(config.max_unindexed_bytes));
        fs::create_dir_all(&root)
            .map_err(|e| CollectionError::Storage(format!("creating {}: {e}", root.display())))?;
        let limits = limits(config);
        let mut open = BTreeMap::new();
        let entries = fs::read_dir(&root)
            .map_err(|e| CollectionError::Storage(format!("reading {}: {e}", root.display())))?;
        for entry in entries {
            let entry = entry?;
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            let path = entry.path();
            if file_name.starts_with(TMP_PREFIX) || file_name.starts_with(TRASH_PREFIX) {
                // An interrupted create or delete.
                if let Err(e) = fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove a leftover directory");
                }
                continue;
            }
            if file_name.starts_with('.') || !path.join(DB_FILE).is_file() {
                continue;
            }
            let collection = Collection::open(&path, limits, pressure.clone()).map_err(|e| {
                CollectionError::Storage(format!("opening collection at {}: {e}", path.display()))
            })?;
            if dir_name(collection.name()) != file_name {
                tracing::warn!(
                    path = %path.display(),
                    name = collection.name(),
                    "collection directory does not match its name"
                );
            }
            open.insert(collection.name().to_string(), Arc::new(collection));
        }
        let open = Arc::new(RwLock::new(open));
        let indexer = Indexer::start(pressure.clone(), Arc::downgrade(&open))?;
        Ok(Self {
            root,
            config: config.clone(),
            open,
            layout: Mutex::new(()),
            pressure,
            _indexer: indexer,
        })
    }

    fn get(&self, name: &str) -> Result<Arc<Collection>> {
        self.open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| CollectionError::NotFound(name.to_string()))
    }

    /// Creates an empty collection; `AlreadyExists` if the name is taken.
    pub fn create(&self, name: &str, params: CollectionParams) -> Result<()> {
        validate_name(name)?;
        if params.size == 0 || params.size > self.config.max_vector_size {
            return Err(CollectionError::BadRequest(format!(
                "vector size must be between 1 and {}, got {}",
                self.config.max_vector_size, params.size
            )));
        }
        if let Some(q) = params.int8_quantile()
            && !(0.5..=1.0).contains(&q)
        {
            return Err(CollectionError::BadRequest(format!(
                "quantization quantile must be between 0.5 and 1, got {q}"
            )));
        }
        let _layout = self.layout.lock().unwrap_or_else(|e| e.into_inner());
        {
            let open = self.open.read().unwrap_or_else(|e| e.into_inner());
            if open.contains_key(name) {
                return Err(CollectionError::AlreadyExists(name.to_string()));
            }
            if open.len() >= self.config.max_collections {
                return Err(CollectionError::TooMany {
                    max: self.config.max_collections,
                });
            }
        }
        let target = self.root.join(dir_name(name));
        let tmp = self.root.join(unique_name(TMP_PREFIX));
        let built = (|| -> Result<()> {
            fs::create_dir(&tmp)?;
            drop(Store::create(&tmp, name, &params)?);
            sync_dir(&tmp)?;
            fs::rename(&tmp, &target).map_err(|e| {
                CollectionError::Storage(format!("moving the new collection into place: {e}"))
            })?;
            sync_dir(&self.root)
        })();
        if let Err(e) = built {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let collection = Collection::open(&target, limits(&self.config), self.pressure.clone())?;
        self.open
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::new(collection));
        Ok(())
    }

    /// Deletes a collection and its files; false if there was none.
    pub fn delete(&self, name: &str) -> Result<bool> {
        let _layout = self.layout.lock().unwrap_or_else(|e| e.into_inner());
        let Some(collection) = self
            .open
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
        else {
            return Ok(false);
        };
        collection.mark_deleted();
        let trash = self.root.join(unique_name(TRASH_PREFIX));
        if let Err(e) = fs::rename(collection.dir(), &trash) {
            self.open
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string(), collection);
            return Err(CollectionError::Storage(format!(
                "moving the collection away: {e}"
            )));
        }
        sync_dir(&self.root)?;
        if let Err(e) = fs::remove_dir_all(&trash) {
            tracing::warn!(path = %trash.display(), error = %e, "could not remove a deleted collection's files; they go on the next start");
        }
        Ok(true)
    }

    pub fn exists(&self, name: &str) -> bool {
        self.open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(name)
    }

    /// Collection names, sorted.
    pub fn list(&self) -> Vec<String> {
        self.open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    pub fn info(&self, name: &str) -> Result<CollectionInfo> {
        Ok(self.get(name)?.info())
    }

    /// The parameters a collection was created with.
    pub fn params(&self, name: &str) -> Result<CollectionParams> {
        Ok(self.get(name)?.params().clone())
    }

    /// Inserts or replaces points. Durable (committed and fsynced) when it
    /// returns Ok.
    pub fn upsert(&self, name: &str, points: Vec<Point>) -> Result<UpdateResult> {
        self.get(name)?.upsert(points)
    }

    pub fn search(&self, name: &str, req: &SearchRequest) -> Result<Vec<ScoredPoint>> {
        self.get(name)?.search(req)
    }

    pub fn count(&self, name: &str, filter: Option<&Filter>) -> Result<u64> {
        self.get(name)?.count(filter)
    }

    /// The points with these ids that exist, each once, in the order asked.
    pub fn retrieve(
        &self,
        name: &str,
        ids: &[PointId],
        with_payload: bool,
        with_vector: bool,
    ) -> Result<Vec<Record>> {
        self.get(name)?.retrieve(ids, with_payload, with_vector)
    }

    pub fn delete_points(&self, name: &str, selector: &Selector) -> Result<UpdateResult> {
        self.get(name)?.delete_points(selector)
    }

    /// A page of points in id order (integers before UUIDs) from `offset`
    /// (inclusive), and the id the next page starts at. Pages are at most
    /// `max_points_per_request` long.
    pub fn scroll(
        &self,
        name: &str,
        filter: Option<&Filter>,
        limit: usize,
        offset: Option<&PointId>,
        with_payload: bool,
        with_vector: bool,
    ) -> Result<(Vec<Record>, Option<PointId>)> {
        self.get(name)?
            .scroll(filter, limit, offset, with_payload, with_vector)
    }

    /// Saves index snapshots of the collections changed since their last one, so
    /// the next start loads them (and replays only the writes made after them)
    /// instead of rebuilding every graph. Data is durable without it. Call it on
    /// shutdown, and now and then while serving (it costs nothing for a
    /// collection that did not change) to keep the start after a crash short.
    pub fn flush(&self) -> Result<()> {
        let all: Vec<Arc<Collection>> = self
            .open
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let mut first_error = None;
        for c in all {
            if let Err(e) = c.flush() {
                tracing::warn!(collection = c.name(), error = %e, "saving the index snapshot failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Waits until every point of a collection is in its graph; false if that
    /// did not happen within `within`. Searches are exact for the points still
    /// waiting, so this matters only for speed.
    pub fn wait_indexed(&self, name: &str, within: std::time::Duration) -> Result<bool> {
        let c = self.get(name)?;
        let deadline = std::time::Instant::now() + within;
        while !c.is_indexed() {
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Ok(true)
    }

    /// Bytes of vectors written since the collections opened and not yet
    /// indexed, in all collections: what the bound counts. (The points read back
    /// at open wait too, but are not counted; see [`Collections::open`].)
    pub fn unindexed_bytes(&self) -> usize {
        self.pressure.bytes()
    }

    /// The directory collections live in.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The limits and layout they were opened with.
    pub fn config(&self) -> &CollectionsConfig {
        &self.config
    }
}

fn limits(config: &CollectionsConfig) -> Limits {
    Limits {
        max_points_per_request: config.max_points_per_request,
        max_payload_bytes: config.max_payload_bytes,
    }
}

/// Checks a collection name: 1 to 255 characters, no `/`, no control
/// characters, not `.` or `..`.
pub fn validate_name(name: &str) -> Result<()> {
    let invalid = |why: &str| Err(CollectionError::InvalidName(why.to_string()));
    let chars = name.chars().count();
    if chars == 0 {
        return invalid("the name is empty");
    }
    if chars > MAX_NAME_CHARS {
        return invalid("the name is longer than 255 characters");
    }
    if name == "." || name == ".." {
        return invalid("`.` and `..` are not names");
    }
    if name.contains('/') {
        return invalid("the name contains `/`");
    }
    if name.chars().any(char::is_control) {
        return invalid("the name contains a control character");
    }
    Ok(())
}

/// The directory name of a collection: the name with every byte outside
/// `[A-Za-z0-9_-]` written `%XX`, or for long names `~` and a hash.
fn dir_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.len() > MAX_DIR_NAME {
        format!("~{}", blake3::hash(name.as_bytes()).to_hex())
    } else {
        out
    }
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_escape_to_safe_directories() {
        assert_eq!(dir_name("docs_v1-a"), "docs_v1-a");
        assert_eq!(dir_name("a b/."), "a%20b%2F%2E");
        assert_eq!(dir_name(".."), "%2E%2E");
        assert!(dir_name(&"é".repeat(200)).starts_with('~'));
        assert!(dir_name(&"é".repeat(200)).len() < 100);
        assert!(validate_name("ok name: é").is_ok());
        for bad in ["", ".", "..", "a/b", "a\nb", "\u{7f}"] {
            assert!(
                matches!(validate_name(bad), Err(CollectionError::InvalidName(_))),
                "{bad:?}"
            );
        }
        assert!(validate_name(&"x".repeat(255)).is_ok());
        assert!(validate_name(&"x".repeat(256)).is_err());
    }
}
