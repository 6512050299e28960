//! The artifact format of a [`Graph`]: versioned, compact, little-endian.
//!
//! ```text
//! magic "AEDWALK\0" · u32 version (1) · u32 nodes n · u32 edges m
//! n × (i32 lat·1e7, i32 lon·1e7) · m × (u32 a, u32 b, u32 cost_cm) · u64 FNV-1a of all before
//! ```
//!
//! 8 bytes per node and 12 per edge; the CSR arrays, components and R-tree are rebuilt on load
//! (a fraction of a second for a country), so the stored form cannot disagree with them.

use crate::graph::{Edge, Graph};

pub const MAGIC: &[u8; 8] = b"AEDWALK\0";
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    NotAGraph,
    UnsupportedVersion(u32),
    Truncated,
    Checksum,
    BadEdge(usize),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::NotAGraph => f.write_str("not a walking graph (bad magic)"),
            DecodeError::UnsupportedVersion(v) => write!(
                f,
                "walking graph format {v} is not supported (this build reads {FORMAT_VERSION}): import the extract again"
            ),
            DecodeError::Truncated => f.write_str("walking graph truncated"),
            DecodeError::Checksum => f.write_str("walking graph checksum mismatch (corrupted)"),
            DecodeError::BadEdge(i) => write!(f, "walking graph edge {i} refers to a missing node"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Graph {
    pub fn encode(&self) -> Vec<u8> {
        let n = self.node_count();
        let m = self.edge_count();
        let mut out = Vec::with_capacity(20 + n * 8 + m * 12 + 8);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.extend_from_slice(&(m as u32).to_le_bytes());
        for (lat, lon) in self.coords_e7() {
            out.extend_from_slice(&lat.to_le_bytes());
            out.extend_from_slice(&lon.to_le_bytes());
        }
        for e in self.edges() {
            for x in [e.a, e.b, e.cost_cm] {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        let h = fnv1a(&out);
        out.extend_from_slice(&h.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Graph, DecodeError> {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(DecodeError::NotAGraph);
        }
        let word = |at: usize| -> Result<u32, DecodeError> {
            bytes
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or(DecodeError::Truncated)
        };
        let version = word(8)?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let n = word(12)? as usize;
        let m = word(16)? as usize;
        let body = 20usize
            .checked_add(n.checked_mul(8).ok_or(DecodeError::Truncated)?)
            .and_then(|x| x.checked_add(m.checked_mul(12)?))
            .ok_or(DecodeError::Truncated)?;
        if bytes.len() != body + 8 {
            return Err(DecodeError::Truncated);
        }
        let stored = u64::from_le_bytes(
            bytes[body..body + 8]
                .try_into()
                .map_err(|_| DecodeError::Truncated)?,
        );
        if fnv1a(&bytes[..body]) != stored {
            return Err(DecodeError::Checksum);
        }
        let mut coords = Vec::with_capacity(n);
        for i in 0..n {
            let at = 20 + i * 8;
            coords.push((word(at)? as i32, word(at + 4)? as i32));
        }
        let mut edges = Vec::with_capacity(m);
        let base = 20 + n * 8;
        for i in 0..m {
            let at = base + i * 12;
            let (a, b, cost_cm) = (word(at)?, word(at + 4)?, word(at + 8)?);
            if a as usize >= n || b as usize >= n {
                return Err(DecodeError::BadEdge(i));
            }
            edges.push(Edge { a, b, cost_cm });
        }
        Ok(Graph::from_parts(coords, edges))
    }
}
