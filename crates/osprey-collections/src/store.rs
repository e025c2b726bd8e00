//! The durable point store: one redb database per collection.
//!
//! Tables: `meta` (the collection's name and parameters, the format version, the
//! operation counter and, when quantized, the int8 scale) and `points` (id key → record). Every write is one redb
//! transaction committed with immediate durability (fsynced), so a write that
//! returned is on disk, and a torn write leaves the previous commit intact.
//!
//! A record is: format byte (1), version (u64 LE), vector length (u32 LE), the
//! vector (f32 LE), then the payload as JSON.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{CollectionError, Result};
use crate::point::{CollectionParams, Payload, PointId};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const POINTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("points");

const FORMAT: u8 = 1;
const KEY_HEADER: &str = "header";
const KEY_OP: &str = "op";
/// The int8 quantization scale, fixed by the first write of a quantized collection.
const KEY_SCALE: &str = "scale";
/// The database file inside a collection's directory.
pub(crate) const DB_FILE: &str = "points.redb";
/// redb's page cache per collection. Points are read back only when the
/// collection opens (they are served from memory), so a small cache is enough.
const CACHE_BYTES: usize = 16 << 20;

/// What the `meta` table holds besides the counter.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct Header {
    pub format: u8,
    pub name: String,
    pub params: CollectionParams,
}

/// One stored point, as read back.
pub(crate) struct StoredPoint {
    pub id: PointId,
    pub version: u64,
    pub vector: Vec<f32>,
    pub payload: Payload,
}

/// A point to write: its id, vector and payload JSON.
pub(crate) struct Write<'a> {
    pub id: &'a PointId,
    pub vector: &'a [f32],
    pub payload_json: &'a [u8],
}

pub(crate) struct Store {
    db: Database,
}

impl Store {
    /// Creates the database of a new collection in `dir`.
    pub(crate) fn create(dir: &Path, name: &str, params: &CollectionParams) -> Result<Self> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join(DB_FILE))
            .map_err(CollectionError::storage)?;
        let header = Header {
            format: FORMAT,
            name: name.to_string(),
            params: params.clone(),
        };
        let header = serde_json::to_vec(&header).map_err(CollectionError::storage)?;
        let tx = db.begin_write().map_err(CollectionError::storage)?;
        {
            let mut meta = tx.open_table(META).map_err(CollectionError::storage)?;
            meta.insert(KEY_HEADER, header.as_slice())
                .map_err(CollectionError::storage)?;
            meta.insert(KEY_OP, 0u64.to_le_bytes().as_slice())
                .map_err(CollectionError::storage)?;
            tx.open_table(POINTS).map_err(CollectionError::storage)?;
        }
        tx.commit().map_err(CollectionError::storage)?;
        Ok(Self { db })
    }

    /// Opens an existing collection's database and reads its header and counter.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Header, u64)> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .open(dir.join(DB_FILE))
            .map_err(CollectionError::storage)?;
        let store = Self { db };
        let tx = store.db.begin_read().map_err(CollectionError::storage)?;
        let meta = tx.open_table(META).map_err(CollectionError::storage)?;
        let header = meta
            .get(KEY_HEADER)
            .map_err(CollectionError::storage)?
            .ok_or_else(|| CollectionError::Storage("the collection has no header".into()))?;
        let header: Header =
            serde_json::from_slice(header.value()).map_err(CollectionError::storage)?;
        if header.format != FORMAT {
            return Err(CollectionError::Storage(format!(
                "unknown collection format {}",
                header.format
            )));
        }
        let op = read_op(&meta)?;
        drop(meta);
        drop(tx);
        Ok((store, header, op))
    }

    /// Calls `f` with every stored point, in id order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(StoredPoint) -> Result<()>) -> Result<()> {
        let tx = self.db.begin_read().map_err(CollectionError::storage)?;
        let points = tx.open_table(POINTS).map_err(CollectionError::storage)?;
        for entry in points.iter().map_err(CollectionError::storage)? {
            let (k, v) = entry.map_err(CollectionError::storage)?;
            let id = PointId::from_key(k.value())
                .ok_or_else(|| CollectionError::Storage("a stored point id is corrupt".into()))?;
            let (version, vector, payload) = decode(v.value())?;
            f(StoredPoint {
                id,
                version,
                vector,
                payload,
            })?;
        }
        Ok(())
    }

    /// The vectors of `ids` (None for an id not stored), in one read: the
    /// originals that rescore an int8 graph's candidates.
    pub(crate) fn vectors<'a>(
        &self,
        ids: impl Iterator<Item = &'a PointId>,
    ) -> Result<Vec<Option<Vec<f32>>>> {
        let tx = self.db.begin_read().map_err(CollectionError::storage)?;
        let points = tx.open_table(POINTS).map_err(CollectionError::storage)?;
        ids.map(|id| {
            let Some(v) = points
                .get(id.to_key().as_slice())
                .map_err(CollectionError::storage)?
            else {
                return Ok(None);
            };
            let (_, vector, _) = split(v.value())?;
            Ok(Some(vector))
        })
        .collect()
    }

    /// The int8 scale, once the first write of a quantized collection set it.
    pub(crate) fn scale(&self) -> Result<Option<f32>> {
        let tx = self.db.begin_read().map_err(CollectionError::storage)?;
        let meta = tx.open_table(META).map_err(CollectionError::storage)?;
        let Some(v) = meta.get(KEY_SCALE).map_err(CollectionError::storage)? else {
            return Ok(None);
        };
        let bytes: [u8; 4] = v
            .value()
            .try_into()
            .map_err(|_| CollectionError::Storage("the quantization scale is corrupt".into()))?;
        Ok(Some(f32::from_le_bytes(bytes)).filter(|s| s.is_finite() && *s > 0.0))
    }

    /// How many points are stored.
    pub(crate) fn len(&self) -> Result<u64> {
        let tx = self.db.begin_read().map_err(CollectionError::storage)?;
        let points = tx.open_table(POINTS).map_err(CollectionError::storage)?;
        points.len().map_err(CollectionError::storage)
    }

    /// Writes `upserts` and removes `deletes` in one durable transaction stamped
    /// with the next operation number, which it returns; `scale` sets the int8
    /// scale in the same transaction.
    pub(crate) fn write(
        &self,
        upserts: &[Write<'_>],
        deletes: &[PointId],
        scale: Option<f32>,
    ) -> Result<u64> {
        let tx = self.db.begin_write().map_err(CollectionError::storage)?;
        let op = {
            let mut meta = tx.open_table(META).map_err(CollectionError::storage)?;
            let op = read_op(&meta)?
                .checked_add(1)
                .ok_or_else(|| CollectionError::Storage("operation counter overflow".into()))?;
            let mut points = tx.open_table(POINTS).map_err(CollectionError::storage)?;
            let mut buf = Vec::new();
            for w in upserts {
                encode(&mut buf, op, w.vector, w.payload_json);
                points
                    .insert(w.id.to_key().as_slice(), buf.as_slice())
                    .map_err(CollectionError::storage)?;
            }
            for id in deletes {
                points
                    .remove(id.to_key().as_slice())
                    .map_err(CollectionError::storage)?;
            }
            meta.insert(KEY_OP, op.to_le_bytes().as_slice())
                .map_err(CollectionError::storage)?;
            if let Some(scale) = scale {
                meta.insert(KEY_SCALE, scale.to_le_bytes().as_slice())
                    .map_err(CollectionError::storage)?;
            }
            op
        };
        tx.commit().map_err(CollectionError::storage)?;
        Ok(op)
    }
}

fn read_op(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<u64> {
    let op = meta
        .get(KEY_OP)
        .map_err(CollectionError::storage)?
        .ok_or_else(|| {
            CollectionError::Storage("the collection has no operation counter".into())
        })?;
    let bytes: [u8; 8] = op
        .value()
        .try_into()
        .map_err(|_| CollectionError::Storage("the operation counter is corrupt".into()))?;
    Ok(u64::from_le_bytes(bytes))
}

fn encode(buf: &mut Vec<u8>, version: u64, vector: &[f32], payload_json: &[u8]) {
    buf.clear();
    buf.reserve(13 + vector.len() * 4 + payload_json.len());
    buf.push(FORMAT);
    buf.extend_from_slice(&version.to_le_bytes());
    // Vector sizes are bounded by the configuration far below u32::MAX.
    buf.extend_from_slice(&(vector.len() as u32).to_le_bytes());
    for x in vector {
        buf.extend_from_slice(&x.to_le_bytes());
    }
    buf.extend_from_slice(payload_json);
}

fn decode(bytes: &[u8]) -> Result<(u64, Vec<f32>, Payload)> {
    let (version, vector, payload) = split(bytes)?;
    let payload = if payload.is_empty() {
        Payload::new()
    } else {
        serde_json::from_slice(payload)
            .map_err(|_| CollectionError::Storage("a stored point is corrupt".into()))?
    };
    Ok((version, vector, payload))
}

/// A record's version, its vector, and its payload's JSON bytes.
fn split(bytes: &[u8]) -> Result<(u64, Vec<f32>, &[u8])> {
    let corrupt = || CollectionError::Storage("a stored point is corrupt".into());
    let (&format, rest) = bytes.split_first().ok_or_else(corrupt)?;
    if format != FORMAT {
        return Err(corrupt());
    }
    let (version, rest) = rest.split_at_checked(8).ok_or_else(corrupt)?;
    let version = u64::from_le_bytes(version.try_into().map_err(|_| corrupt())?);
    let (len, rest) = rest.split_at_checked(4).ok_or_else(corrupt)?;
    let len = u32::from_le_bytes(len.try_into().map_err(|_| corrupt())?) as usize;
    let (vec_bytes, payload) = rest
        .split_at_checked(len.checked_mul(4).ok_or_else(corrupt)?)
        .ok_or_else(corrupt)?;
    let vector = vec_bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((version, vector, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, &[1.0, -2.5], br#"{"a":1}"#);
        let (v, vec, p) = decode(&buf).unwrap();
        assert_eq!(v, 7);
        assert_eq!(vec, vec![1.0, -2.5]);
        assert_eq!(p.get("a"), Some(&serde_json::json!(1)));
        assert!(decode(&buf[..5]).is_err());
        assert!(decode(&[]).is_err());
    }
}
