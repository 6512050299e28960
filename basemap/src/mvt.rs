//! The Mapbox Vector Tile wire format (vector_tile.proto 2.1) as prost messages, with the
//! geometry command encoding and a decoder for tests and tools.
//!
//! The schema is eight fields; deriving it with prost keeps the build free of `protoc` and
//! gives the decoder for free.

use std::collections::HashMap;

/// Tile extent in integer units per side (the spec's default).
pub const EXTENT: u32 = 4096;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Tile {
    #[prost(message, repeated, tag = "3")]
    pub layers: Vec<Layer>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Layer {
    #[prost(uint32, required, tag = "15")]
    pub version: u32,
    #[prost(string, required, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub features: Vec<Feature>,
    #[prost(string, repeated, tag = "3")]
    pub keys: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub values: Vec<Value>,
    #[prost(uint32, optional, tag = "5")]
    pub extent: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Feature {
    #[prost(uint64, optional, tag = "1")]
    pub id: Option<u64>,
    #[prost(uint32, repeated, packed = "true", tag = "2")]
    pub tags: Vec<u32>,
    #[prost(enumeration = "GeomType", optional, tag = "3")]
    pub r#type: Option<i32>,
    #[prost(uint32, repeated, packed = "true", tag = "4")]
    pub geometry: Vec<u32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(string, optional, tag = "1")]
    pub string_value: Option<String>,
    #[prost(float, optional, tag = "2")]
    pub float_value: Option<f32>,
    #[prost(double, optional, tag = "3")]
    pub double_value: Option<f64>,
    #[prost(int64, optional, tag = "4")]
    pub int_value: Option<i64>,
    #[prost(uint64, optional, tag = "5")]
    pub uint_value: Option<u64>,
    #[prost(sint64, optional, tag = "6")]
    pub sint_value: Option<i64>,
    #[prost(bool, optional, tag = "7")]
    pub bool_value: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum GeomType {
    Unknown = 0,
    Point = 1,
    Linestring = 2,
    Polygon = 3,
}

/// A property value as the builder writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Prop {
    Str(String),
    Int(i64),
}

/// Tile-local integer geometry (y grows downwards, 0..EXTENT plus a buffer).
#[derive(Debug, Clone, PartialEq)]
pub enum Geom {
    Points(Vec<[i32; 2]>),
    Lines(Vec<Vec<[i32; 2]>>),
    /// Rings without the closing point, `true` for an exterior, each exterior followed by its
    /// holes. The encoder fixes winding: exteriors clockwise on screen (positive area).
    Polygon(Vec<(bool, Vec<[i32; 2]>)>),
}

fn zigzag(n: i32) -> u32 {
    ((n << 1) ^ (n >> 31)) as u32
}

fn unzigzag(n: u32) -> i32 {
    ((n >> 1) as i32) ^ -((n & 1) as i32)
}

fn command(id: u32, count: usize) -> u32 {
    (id & 7) | ((count as u32) << 3)
}

/// Twice the signed area in screen coordinates (y down): positive = clockwise on screen.
pub fn ring_area2(r: &[[i32; 2]]) -> i64 {
    let mut s = 0i64;
    for i in 0..r.len() {
        let a = r[i];
        let b = r[(i + 1) % r.len()];
        s += i64::from(a[0]) * i64::from(b[1]) - i64::from(b[0]) * i64::from(a[1]);
    }
    s
}

struct Cursor {
    x: i32,
    y: i32,
    out: Vec<u32>,
}

impl Cursor {
    fn push_points(&mut self, pts: &[[i32; 2]]) {
        for p in pts {
            self.out.push(zigzag(p[0] - self.x));
            self.out.push(zigzag(p[1] - self.y));
            self.x = p[0];
            self.y = p[1];
        }
    }
}

/// Encodes `g` as MVT commands; `None` when nothing drawable is left.
pub fn encode_geometry(g: &Geom) -> Option<(GeomType, Vec<u32>)> {
    let mut c = Cursor {
        x: 0,
        y: 0,
        out: Vec::new(),
    };
    let kind = match g {
        Geom::Points(pts) => {
            if pts.is_empty() {
                return None;
            }
            c.out.push(command(1, pts.len()));
            c.push_points(pts);
            GeomType::Point
        }
        Geom::Lines(lines) => {
            for l in lines.iter().filter(|l| l.len() >= 2) {
                c.out.push(command(1, 1));
                c.push_points(&l[..1]);
                c.out.push(command(2, l.len() - 1));
                c.push_points(&l[1..]);
            }
            GeomType::Linestring
        }
        Geom::Polygon(rings) => {
            // A hole whose exterior was dropped (degenerate) would turn into an exterior.
            let mut have_exterior = false;
            for (exterior, r) in rings.iter().filter(|(_, r)| r.len() >= 3) {
                let area = ring_area2(r);
                if area == 0 || (!exterior && !have_exterior) {
                    if *exterior {
                        have_exterior = false;
                    }
                    continue;
                }
                have_exterior |= *exterior;
                let mut ring = r.clone();
                if *exterior != (area > 0) {
                    ring.reverse();
                }
                c.out.push(command(1, 1));
                c.push_points(&ring[..1]);
                c.out.push(command(2, ring.len() - 1));
                c.push_points(&ring[1..]);
                c.out.push(command(7, 1));
            }
            GeomType::Polygon
        }
    };
    if c.out.is_empty() {
        None
    } else {
        Some((kind, c.out))
    }
}

/// Decodes MVT commands back into parts (points, lines or rings, absolute coordinates).
pub fn decode_geometry(cmds: &[u32]) -> Result<Vec<Vec<[i32; 2]>>, String> {
    let (mut x, mut y) = (0i32, 0i32);
    let mut parts: Vec<Vec<[i32; 2]>> = Vec::new();
    let mut i = 0;
    while i < cmds.len() {
        let id = cmds[i] & 7;
        let count = (cmds[i] >> 3) as usize;
        i += 1;
        match id {
            1 | 2 => {
                if i + 2 * count > cmds.len() {
                    return Err("geometry truncated".into());
                }
                for k in 0..count {
                    x += unzigzag(cmds[i + 2 * k]);
                    y += unzigzag(cmds[i + 2 * k + 1]);
                    if id == 1 {
                        parts.push(vec![[x, y]]);
                    } else {
                        parts.last_mut().ok_or("LineTo before MoveTo")?.push([x, y]);
                    }
                }
                i += 2 * count;
            }
            7 => {}
            other => return Err(format!("unknown command {other}")),
        }
    }
    Ok(parts)
}

/// Collects the features of one layer, interning keys and values as the format wants.
#[derive(Debug, Default)]
pub struct LayerBuilder {
    keys: Vec<String>,
    key_idx: HashMap<String, u32>,
    values: Vec<Value>,
    str_idx: HashMap<String, u32>,
    int_idx: HashMap<i64, u32>,
    features: Vec<Feature>,
    /// Rough encoded size so far, for the tile-size budget.
    pub bytes: usize,
}

impl LayerBuilder {
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    pub fn len(&self) -> usize {
        self.features.len()
    }

    pub fn add(&mut self, id: u64, geom: &Geom, props: &[(&'static str, Prop)]) {
        let Some((kind, geometry)) = encode_geometry(geom) else {
            return;
        };
        let mut tags = Vec::with_capacity(props.len() * 2);
        for (k, v) in props {
            let ki = match self.key_idx.get(*k) {
                Some(i) => *i,
                None => {
                    let i = self.keys.len() as u32;
                    self.keys.push((*k).to_string());
                    self.key_idx.insert((*k).to_string(), i);
                    i
                }
            };
            let vi = match v {
                Prop::Str(s) => match self.str_idx.get(s) {
                    Some(i) => *i,
                    None => {
                        let i = self.values.len() as u32;
                        self.values.push(Value {
                            string_value: Some(s.clone()),
                            ..Default::default()
                        });
                        self.str_idx.insert(s.clone(), i);
                        i
                    }
                },
                Prop::Int(n) => match self.int_idx.get(n) {
                    Some(i) => *i,
                    None => {
                        let i = self.values.len() as u32;
                        self.values.push(Value {
                            int_value: Some(*n),
                            ..Default::default()
                        });
                        self.int_idx.insert(*n, i);
                        i
                    }
                },
            };
            tags.push(ki);
            tags.push(vi);
        }
        self.bytes += geometry.len() * 2 + tags.len() + 8;
        self.features.push(Feature {
            id: Some(id),
            tags,
            r#type: Some(kind as i32),
            geometry,
        });
    }

    pub fn finish(self, name: &str) -> Layer {
        Layer {
            version: 2,
            name: name.to_string(),
            features: self.features,
            keys: self.keys,
            values: self.values,
            extent: Some(EXTENT),
        }
    }
}

/// A decoded feature, for tests and tools: its layer, type, properties and geometry parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub layer: String,
    pub kind: GeomType,
    pub props: HashMap<String, Prop>,
    pub parts: Vec<Vec<[i32; 2]>>,
}

/// Decodes an (uncompressed) tile into its features.
pub fn decode_tile(bytes: &[u8]) -> Result<Vec<Decoded>, String> {
    use prost::Message;
    let tile = Tile::decode(bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for l in &tile.layers {
        for f in &l.features {
            let mut props = HashMap::new();
            for kv in f.tags.chunks(2) {
                let [k, v] = kv else {
                    return Err("odd tag count".into());
                };
                let key = l.keys.get(*k as usize).ok_or("bad key index")?;
                let val = l.values.get(*v as usize).ok_or("bad value index")?;
                let p = if let Some(s) = &val.string_value {
                    Prop::Str(s.clone())
                } else if let Some(n) = val.int_value.or(val.sint_value) {
                    Prop::Int(n)
                } else {
                    continue;
                };
                props.insert(key.clone(), p);
            }
            out.push(Decoded {
                layer: l.name.clone(),
                kind: GeomType::try_from(f.r#type.unwrap_or(0)).unwrap_or(GeomType::Unknown),
                props,
                parts: decode_geometry(&f.geometry)?,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_round_trip_and_winding() {
        let line = Geom::Lines(vec![vec![[1, 1], [10, 1], [10, -5]]]);
        let (k, cmds) = encode_geometry(&line).unwrap();
        assert_eq!(k, GeomType::Linestring);
        assert_eq!(cmds[0], command(1, 1));
        assert_eq!(
            decode_geometry(&cmds).unwrap(),
            vec![vec![[1, 1], [10, 1], [10, -5]]]
        );
        // Counter-clockwise exterior on screen, clockwise hole: both flipped.
        let outer = vec![[0, 0], [0, 100], [100, 100], [100, 0]];
        let hole = vec![[10, 10], [20, 10], [20, 20], [10, 20]];
        assert!(ring_area2(&outer) < 0 && ring_area2(&hole) > 0);
        let (k, cmds) =
            encode_geometry(&Geom::Polygon(vec![(true, outer), (false, hole)])).unwrap();
        assert_eq!(k, GeomType::Polygon);
        let parts = decode_geometry(&cmds).unwrap();
        assert!(ring_area2(&parts[0]) > 0, "exterior clockwise");
        // The hole is the second ring; its winding must be the opposite of the exterior's.
        assert!(ring_area2(&parts[1]) < 0, "hole anticlockwise");
        assert_eq!(zigzag(-1), 1);
        assert_eq!(unzigzag(zigzag(-12345)), -12345);
        assert!(encode_geometry(&Geom::Lines(vec![vec![[1, 1]]])).is_none());
    }
}
