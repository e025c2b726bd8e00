//! The database's tables and the byte layout of a stored entry. Both are the
//! on-disk format: files written by earlier builds must keep reading.

use redb::TableDefinition;

use crate::{CacheError, Entry, Result, clock, codec};

/// key → [insertion seq u64][expires at, unix ms u64, 0 = never][codec bytes]
pub(super) const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
/// insertion seq → key: the FIFO eviction order.
pub(super) const ORDER: TableDefinition<u64, &[u8]> = TableDefinition::new("order");
/// Running totals: `bytes`, `entries`, `next_seq`.
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(super) const ENTRY_HEADER: usize = 16;

/// An entry's stored value: its header, then the codec bytes.
pub(super) fn value(seq: u64, expires: u64, body: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(ENTRY_HEADER + body.len());
    value.extend_from_slice(&seq.to_le_bytes());
    value.extend_from_slice(&expires.to_le_bytes());
    value.extend_from_slice(body);
    value
}

/// A stored value's insertion sequence number and expiry.
pub(super) fn header(value: &[u8]) -> Result<(u64, u64)> {
    let short = || CacheError::Corrupt("short disk entry");
    let seq = value.get(..8).ok_or_else(short)?;
    let expires = value.get(8..ENTRY_HEADER).ok_or_else(short)?;
    Ok((le_u64(seq), le_u64(expires)))
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0; 8];
    buf.copy_from_slice(bytes);
    u64::from_le_bytes(buf)
}

/// The entry in a stored value; `Ok(None)` when it expired by `now`.
pub(super) fn parse(value: &[u8], now: u64) -> Result<Option<Entry>> {
    let (_, expires) = header(value)?;
    if clock::expired(expires, now) {
        return Ok(None);
    }
    codec::decode(&value[ENTRY_HEADER..]).map(Some)
}

/// Whether a stored value is gone at `now`; a damaged header counts as expired.
pub(super) fn expired_at(value: &[u8], now: u64) -> bool {
    header(value).map_or(true, |(_, expires)| clock::expired(expires, now))
}

/// Bytes an entry is charged: its value, its key twice (entry and order index) and
/// the sequence number.
pub(super) fn stored_size(value_len: usize) -> u64 {
    (value_len + 32 * 2 + 8) as u64
}
