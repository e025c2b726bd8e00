//! The `[collections]` section of the configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where collections live and the limits on what a client may send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectionsConfig {
    /// The directory holding one sub-directory per collection.
    pub path: PathBuf,
    /// How many collections may exist at once.
    pub max_collections: usize,
    /// How many points one upsert, retrieve or delete may name.
    pub max_points_per_request: usize,
    /// The largest payload of one point, as serialized JSON bytes.
    pub max_payload_bytes: usize,
    /// The largest vector size a collection may be created with.
    pub max_vector_size: usize,
    /// Bytes of vectors (4 per dimension) that may wait for the background
    /// indexer, across all collections. They are searched exhaustively until
    /// indexed; a write that would pass the bound waits for the indexer, and
    /// after 2 s gets 503 with `Retry-After`. The points a restart reads back
    /// for indexing are not counted: the graph would hold them anyway.
    pub max_unindexed_bytes: usize,
}

impl Default for CollectionsConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/collections"),
            max_collections: 64,
            max_points_per_request: 10_000,
            max_payload_bytes: 65_536,
            max_vector_size: 65_536,
            max_unindexed_bytes: 256 << 20,
        }
    }
}
