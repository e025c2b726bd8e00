//! Durable vector collections for Osprey: points (a vector, a JSON payload and an
//! id) in named collections, searched by an HNSW index with Qdrant-style payload
//! filters applied during the graph walk.
//!
//! - [`Collections`] is the manager the HTTP layer calls (from blocking threads).
//! - Every write is committed to the collection's redb database with immediate
//!   durability before it returns. On start the in-memory index is loaded from
//!   the last snapshot [`Collections::flush`] saved, and the writes made after it
//!   are replayed from the store; without a usable snapshot it is rebuilt from
//!   the store.
//! - Vectors live once in memory, inside the index; payloads are kept in memory
//!   too, for filtering.
//!
//! Scores follow Qdrant: Cosine gives the cosine similarity (vectors are stored
//! normalized), Dot the raw dot product, Euclid the distance (ascending).
#![forbid(unsafe_code)]

mod collection;
mod config;
mod error;
mod filter;
mod index;
mod manager;
mod point;
mod score;
mod snapshot;
mod store;

pub use config::CollectionsConfig;
pub use error::{CollectionError, Result};
pub use filter::{
    AnyVariants, Condition, FieldCondition, Filter, HasIdCondition, IsEmptyCondition,
    IsNullCondition, Match, MatchValue, MinShould, Nested, NestedCondition, PayloadField, Range,
    ValuesCount,
};
pub use index::{CONNECTIVITY, DEFAULT_EF, EF_CONSTRUCTION};
pub use manager::{Collections, validate_name};
pub use point::{
    CollectionInfo, CollectionParams, Distance, Payload, Point, PointId, Record, ScoredPoint,
    SearchRequest, Selector, UpdateResult,
};
