//! Vector collections: search latency and size, labelled by collection (their
//! number is bounded by `collections.max_collections`).

use std::time::Duration;

use super::{Event, name};

/// One search (`osprey_collection_search_duration_seconds{collection}`): the index
/// and store work, not the embedding of a text query.
#[derive(Debug, Clone, Copy)]
pub struct CollectionSearched<'a> {
    pub collection: &'a str,
    pub took: Duration,
}

impl Event for CollectionSearched<'_> {
    fn emit(self) {
        metrics::histogram!(name::COLLECTION_SEARCH_DURATION, "collection" => self.collection.to_owned())
            .record(self.took.as_secs_f64());
    }
}

/// A collection's point count (`osprey_collection_points{collection}`) and the
/// points still waiting for the background indexer, searched exhaustively
/// meanwhile (`osprey_collection_unindexed_points{collection}`); read when
/// scraped.
#[derive(Debug, Clone, Copy)]
pub struct CollectionSize<'a> {
    pub collection: &'a str,
    pub points: u64,
    pub unindexed: u64,
}

impl Event for CollectionSize<'_> {
    fn emit(self) {
        metrics::gauge!(name::COLLECTION_POINTS, "collection" => self.collection.to_owned())
            .set(self.points as f64);
        metrics::gauge!(name::COLLECTION_UNINDEXED_POINTS, "collection" => self.collection.to_owned())
            .set(self.unindexed as f64);
    }
}
