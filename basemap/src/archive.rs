//! The basemap archive: every tile of one build in one blob, the form stored as the `basemap`
//! artifact and held in memory by serving nodes.
//!
//! Layout (little-endian): magic `AEDTILES`, format version u32, metadata length u32 and the
//! metadata as JSON, tile count u32, then one 17-byte index entry per tile sorted by
//! (z, x, y) — z u8, x u32, y u32, offset u32, length u32 — and the gzip-compressed tiles.
//! Like MBTiles without SQLite: the archive is read whole from the store and served from
//! memory, so PMTiles' range-request directories would buy nothing here.

use std::collections::HashMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"AEDTILES";
pub const FORMAT_VERSION: u32 = 1;

/// What the archive says about itself: the TileJSON fields and the build's counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub format_version: u32,
    pub minzoom: u8,
    pub maxzoom: u8,
    /// west, south, east, north (degrees).
    pub bounds: [f64; 4],
    /// lon, lat, zoom.
    pub center: [f64; 3],
    /// `osm` or `synthetic`.
    pub origin: String,
    /// "© OpenStreetMap contributors" for OSM data, none for the demo city.
    pub attribution: Option<String>,
    pub layers: Vec<String>,
    pub tiles: u64,
    /// Tiles that shed layers to fit the size budget.
    pub trimmed: u64,
    /// Features per layer (before cutting).
    pub features: HashMap<String, u64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ArchiveError {
    #[error("not a basemap archive")]
    Magic,
    #[error("basemap archive format {0} is not supported (this build reads {FORMAT_VERSION})")]
    Version(u32),
    #[error("basemap archive truncated or corrupt: {0}")]
    Corrupt(&'static str),
}

/// A tile's coordinates.
pub type TileId = (u8, u32, u32);

/// A decoded archive: the metadata and an index into the compressed tiles.
#[derive(Debug, Clone)]
pub struct Archive {
    pub meta: Meta,
    index: HashMap<TileId, (u32, u32)>,
    data: Vec<u8>,
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).expect("writing to memory");
    e.finish().expect("writing to memory")
}

pub fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// Writes an archive from tiles already gzip-compressed, sorted or not.
pub fn write(meta: &Meta, tiles: &mut [(TileId, Vec<u8>)]) -> Vec<u8> {
    tiles.sort_by_key(|t| t.0);
    let meta_json = serde_json::to_vec(meta).expect("metadata serializes");
    let data_len: usize = tiles.iter().map(|t| t.1.len()).sum();
    let mut out = Vec::with_capacity(20 + meta_json.len() + tiles.len() * 17 + data_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(meta_json.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta_json);
    out.extend_from_slice(&(tiles.len() as u32).to_le_bytes());
    let mut offset = 0u32;
    for ((z, x, y), bytes) in tiles.iter() {
        out.push(*z);
        out.extend_from_slice(&x.to_le_bytes());
        out.extend_from_slice(&y.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        offset += bytes.len() as u32;
    }
    for (_, bytes) in tiles.iter() {
        out.extend_from_slice(bytes);
    }
    out
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ArchiveError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or(ArchiveError::Corrupt("ends early"))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, ArchiveError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
}

impl Archive {
    pub fn decode(bytes: &[u8]) -> Result<Archive, ArchiveError> {
        let mut r = Reader { b: bytes, at: 0 };
        if r.take(8).map_err(|_| ArchiveError::Magic)? != MAGIC {
            return Err(ArchiveError::Magic);
        }
        let v = r.u32()?;
        if v != FORMAT_VERSION {
            return Err(ArchiveError::Version(v));
        }
        let n = r.u32()? as usize;
        let meta: Meta =
            serde_json::from_slice(r.take(n)?).map_err(|_| ArchiveError::Corrupt("metadata"))?;
        let count = r.u32()? as usize;
        let mut index = HashMap::with_capacity(count.min(bytes.len() / 17));
        let mut entries = Vec::with_capacity(count.min(bytes.len() / 17));
        for _ in 0..count {
            let z = r.take(1)?[0];
            let (x, y, off, len) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
            entries.push(((z, x, y), (off, len)));
        }
        let data = &bytes[r.at..];
        for (id, (off, len)) in entries {
            if (off as usize)
                .checked_add(len as usize)
                .is_none_or(|e| e > data.len())
            {
                return Err(ArchiveError::Corrupt("tile outside the data"));
            }
            index.insert(id, (off, len));
        }
        Ok(Archive {
            meta,
            index,
            data: data.to_vec(),
        })
    }

    /// The gzip-compressed tile, `None` if the archive has none there (empty or outside).
    pub fn tile(&self, z: u8, x: u32, y: u32) -> Option<&[u8]> {
        let (off, len) = *self.index.get(&(z, x, y))?;
        Some(&self.data[off as usize..off as usize + len as usize])
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Every tile id, sorted (tools, benches).
    pub fn ids(&self) -> Vec<TileId> {
        let mut v: Vec<TileId> = self.index.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            format_version: FORMAT_VERSION,
            minzoom: 8,
            maxzoom: 16,
            bounds: [9.4, 47.0, 9.7, 47.3],
            center: [9.5, 47.1, 12.0],
            origin: "osm".into(),
            attribution: Some("© OpenStreetMap contributors".into()),
            layers: vec!["water".into()],
            tiles: 2,
            trimmed: 0,
            features: HashMap::new(),
        }
    }

    #[test]
    fn write_then_read() {
        let mut tiles = vec![((9, 5, 7), gzip(b"b")), ((8, 1, 2), gzip(b"a"))];
        let bytes = write(&meta(), &mut tiles);
        let a = Archive::decode(&bytes).unwrap();
        assert_eq!(a.meta, meta());
        assert_eq!(a.len(), 2);
        assert_eq!(gunzip(a.tile(9, 5, 7).unwrap()).unwrap(), b"b");
        assert_eq!(gunzip(a.tile(8, 1, 2).unwrap()).unwrap(), b"a");
        assert!(a.tile(8, 2, 2).is_none());
        assert_eq!(a.ids(), vec![(8, 1, 2), (9, 5, 7)]);
        // Damage is refused, not served.
        assert_eq!(Archive::decode(b"nope").unwrap_err(), ArchiveError::Magic);
        assert!(Archive::decode(&bytes[..bytes.len() - 3]).is_err());
        let mut v2 = bytes.clone();
        v2[8] = 9;
        assert_eq!(Archive::decode(&v2).unwrap_err(), ArchiveError::Version(9));
    }
}
