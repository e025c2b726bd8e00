//! The graph on disk: a header, then each node's key, level and whether it is
//! hidden, then the link blocks and the vectors as they lie in memory, all
//! little-endian. A file is read back only into a graph of the same element
//! type, metric, size and degree, and every link is checked to name a node.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::{Graph, MAX_LEVEL, Metric, unpack_entry};
use crate::element::Element;

const MAGIC: &[u8; 8] = b"OSPGRAF1";
/// Bytes before the nodes: the magic, the element and metric tags, dims, M and
/// ef_construction (u32 each), the level generator's state, the entry point
/// and the node count (u64 each).
pub(super) const HEADER: u64 = 8 + 2 + 3 * 4 + 3 * 8;
/// Bytes per node before the links: key, level, hidden.
pub(super) const NODE_HEAD: u64 = 10;
/// Values encoded per write.
const WRITE_CHUNK: usize = 1 << 14;

fn metric_tag(m: Metric) -> u8 {
    match m {
        Metric::Inner => 0,
        Metric::L2 => 1,
    }
}

impl<T: Element> Graph<T> {
    /// Writes the graph to `path` (the caller makes that atomic). Linking waits.
    pub(crate) fn save(&self, path: &Path) -> std::io::Result<()> {
        let _one = self.linking.lock().unwrap_or_else(|e| e.into_inner());
        let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
        w.write_all(MAGIC)?;
        w.write_all(&[T::TAG, metric_tag(self.metric)])?;
        for x in [self.dims, self.m, self.ef_construction] {
            w.write_all(&(x as u32).to_le_bytes())?;
        }
        w.write_all(&self.rng.to_le_bytes())?;
        w.write_all(&self.entry.load(Ordering::Acquire).to_le_bytes())?;
        w.write_all(&(self.keys.len() as u64).to_le_bytes())?;
        for (node, key) in self.keys.iter().enumerate() {
            w.write_all(&key.to_le_bytes())?;
            let hidden = self.hidden[node].load(Ordering::Acquire);
            w.write_all(&[self.level(node as u32) as u8, u8::from(hidden)])?;
        }
        let blocks = std::iter::once(&self.links0[..]).chain(self.upper.iter().map(|b| &b[..]));
        let mut buf = Vec::with_capacity(WRITE_CHUNK * 4);
        for links in blocks.flat_map(|b| b.chunks(WRITE_CHUNK)) {
            buf.clear();
            for l in links {
                buf.extend_from_slice(&l.load(Ordering::Relaxed).to_le_bytes());
            }
            w.write_all(&buf)?;
        }
        for chunk in self.vectors.chunks(WRITE_CHUNK) {
            buf.clear();
            chunk.iter().for_each(|x| x.to_le(&mut buf));
            w.write_all(&buf)?;
        }
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    }

    /// Reads a graph [`Graph::save`] wrote, for vectors of `dims` compared by
    /// `metric` with degree `m`.
    pub(crate) fn load(path: &Path, dims: usize, metric: Metric, m: usize) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| e.to_string())?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut r = Reader(BufReader::with_capacity(1 << 20, file));
        if &r.array::<8>()? != MAGIC {
            return Err("not a graph file".into());
        }
        let [tag, metric_byte] = r.array::<2>()?;
        let (file_dims, file_m, ef_construction) = (r.u32()?, r.u32()?, r.u32()? as usize);
        if tag != T::TAG
            || metric_byte != metric_tag(metric)
            || file_dims as usize != dims
            || file_m as usize != m
            || m < 2
        {
            return Err("the graph file does not fit the collection's parameters".into());
        }
        let mut g = Self::new(dims, metric, m, ef_construction);
        g.rng = r.u64()?;
        let entry = r.u64()?;
        let nodes = r.u64()?;
        if nodes > u64::from(u32::MAX) || nodes.saturating_mul(NODE_HEAD) > len {
            return Err("the graph file's node count is out of range".into());
        }
        let mut levels = Vec::with_capacity(nodes as usize);
        let mut hidden = Vec::with_capacity(nodes as usize);
        for _ in 0..nodes {
            g.keys.push(r.u64()?);
            let [level, h] = r.array::<2>()?;
            if level as usize > MAX_LEVEL {
                return Err("a node's level is out of range".into());
            }
            levels.push(level as usize);
            hidden.push(h != 0);
        }
        let block0 = g.block0() as u64;
        let uppers: u64 = levels.iter().map(|l| (*l * (1 + m)) as u64).sum();
        let rest = (nodes * block0 + uppers) * 4 + nodes * dims as u64 * T::BYTES as u64;
        if HEADER + nodes * NODE_HEAD + rest != len {
            return Err("the graph file's length does not match its header".into());
        }
        let link = |x: u32| AtomicU32::new(x);
        g.links0 = (0..nodes * block0)
            .map(|_| r.u32().map(link))
            .collect::<Result<_, _>>()?;
        for l in &levels {
            let block: Box<[AtomicU32]> = (0..l * (1 + m))
                .map(|_| r.u32().map(link))
                .collect::<Result<_, _>>()?;
            g.upper.push(block);
        }
        // The vectors, the bulk of the file, a megabyte of bytes at a time.
        let mut left = nodes as usize * dims;
        g.vectors.reserve_exact(left);
        let mut bytes = vec![0u8; (1 << 20) / T::BYTES * T::BYTES];
        while left > 0 {
            let take = left.min(bytes.len() / T::BYTES);
            let chunk = &mut bytes[..take * T::BYTES];
            r.0.read_exact(chunk).map_err(|e| e.to_string())?;
            g.vectors
                .extend(chunk.chunks_exact(T::BYTES).map(T::from_le));
            left -= take;
        }
        g.check_links(nodes as u32)?;
        for (node, h) in hidden.into_iter().enumerate() {
            g.hidden.push(AtomicBool::new(h));
            if !h && g.by_key.insert(g.keys[node], node as u32).is_some() {
                return Err("two nodes hold the same key".into());
            }
        }
        match unpack_entry(entry) {
            Some((node, level)) if levels.get(node as usize) != Some(&level) => {
                return Err("the entry point is not a node of its level".into());
            }
            None if nodes > 0 => return Err("nodes without an entry point".into()),
            _ => {}
        }
        g.entry = AtomicU64::new(entry);
        Ok(g)
    }

    /// Every count fits its block and every link names a node.
    fn check_links(&self, nodes: u32) -> Result<(), String> {
        let width0 = self.block0();
        let width = 1 + self.m;
        let blocks = self
            .links0
            .chunks(width0)
            .chain(self.upper.iter().flat_map(|b| b.chunks(width)));
        for block in blocks {
            let Some((count, slots)) = block.split_first() else {
                continue;
            };
            let n = count.load(Ordering::Relaxed) as usize;
            if n > slots.len()
                || slots[..n]
                    .iter()
                    .any(|s| s.load(Ordering::Relaxed) >= nodes)
            {
                return Err("a link block of the graph file is out of range".into());
            }
        }
        Ok(())
    }
}

struct Reader(BufReader<File>);

impl Reader {
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.0.read_exact(&mut b).map_err(|e| e.to_string())?;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, String> {
        self.array::<4>().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Result<u64, String> {
        self.array::<8>().map(u64::from_le_bytes)
    }
}
