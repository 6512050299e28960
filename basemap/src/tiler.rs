//! Cutting features into tiles: Web Mercator projection, per-zoom simplification, clipping to
//! each tile with a buffer, the pixel-size filter and the tile-size budget.
//!
//! As in planetiler and tilemaker: geometry is simplified once per zoom in that zoom's pixel
//! space (Douglas–Peucker, a fraction of a pixel), areas and lines smaller than a pixel are
//! dropped below the highest zoom, lines and polygons are clipped to the tile plus a small
//! buffer (so strokes and fills join without seams), and a tile over the byte budget sheds its
//! least important layers first.

use std::collections::HashMap;

use geo::{Coord, LineString, Simplify};
use prost::Message;

use crate::features::{DROP_ORDER, LAYERS};
use crate::mvt::{Geom, LayerBuilder, Prop, Tile, EXTENT};

/// Geometry in world coordinates: Web Mercator scaled to 0..1 (x east, y south).
#[derive(Debug, Clone)]
pub enum WorldGeom {
    Point([f64; 2]),
    Line(Vec<[f64; 2]>),
    /// Rings (closed: first = last), `true` for exteriors, each followed by its holes.
    Area(Vec<(bool, Vec<[f64; 2]>)>),
}

/// One feature ready to cut.
#[derive(Debug, Clone)]
pub struct Feat {
    pub id: u64,
    pub layer: usize,
    pub minzoom: u8,
    pub props: Vec<(&'static str, Prop)>,
    pub geom: WorldGeom,
    /// min x, min y, max x, max y in world coordinates.
    pub bbox: [f64; 4],
}

pub fn project(lon: f64, lat: f64) -> [f64; 2] {
    let lat = lat.clamp(-85.051_128, 85.051_128).to_radians();
    let x = (lon + 180.0) / 360.0;
    let y = (1.0 - (lat.tan() + 1.0 / lat.cos()).ln() / std::f64::consts::PI) / 2.0;
    [x, y]
}

pub fn bbox_of<'a>(pts: impl Iterator<Item = &'a [f64; 2]>) -> [f64; 4] {
    let mut b = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
    for p in pts {
        b[0] = b[0].min(p[0]);
        b[1] = b[1].min(p[1]);
        b[2] = b[2].max(p[0]);
        b[3] = b[3].max(p[1]);
    }
    b
}

/// Tuning of the cut; the defaults are the ones the import uses.
#[derive(Debug, Clone)]
pub struct TileOptions {
    pub minzoom: u8,
    pub maxzoom: u8,
    /// Tile units (of 4096) around each tile that lines and areas extend into.
    pub buffer: f64,
    /// Douglas–Peucker tolerance in tile units below `maxzoom` (16 units = one 256-px pixel).
    pub tolerance: f64,
    /// Tolerance at `maxzoom`, where the client overzooms and detail shows.
    pub tolerance_max: f64,
    /// Areas smaller than this many square pixels (of 256) are dropped below `maxzoom`.
    pub min_area_px: f64,
    /// Largest uncompressed tile; bigger ones shed layers in [`DROP_ORDER`].
    pub tile_budget: usize,
}

impl Default for TileOptions {
    fn default() -> Self {
        Self {
            minzoom: 8,
            maxzoom: 16,
            buffer: 64.0,
            tolerance: 4.0,
            tolerance_max: 1.0,
            min_area_px: 2.0,
            tile_budget: 500 * 1024,
        }
    }
}

/// One finished tile: `(z, x, y)` and its uncompressed MVT bytes.
pub type TileBytes = ((u8, u32, u32), Vec<u8>);

/// What cutting one zoom produced.
#[derive(Debug, Default)]
pub struct ZoomOutcome {
    pub tiles: Vec<TileBytes>,
    /// Tiles that had to shed layers to fit the budget.
    pub trimmed: u64,
}

fn to_px(pts: &[[f64; 2]], scale: f64) -> LineString<f64> {
    LineString(
        pts.iter()
            .map(|p| Coord {
                x: p[0] * scale,
                y: p[1] * scale,
            })
            .collect(),
    )
}

fn ring_area_px(ls: &LineString<f64>) -> f64 {
    let mut s = 0.0;
    for w in ls.0.windows(2) {
        s += w[0].x * w[1].y - w[1].x * w[0].y;
    }
    (s / 2.0).abs()
}

fn line_len(ls: &LineString<f64>) -> f64 {
    ls.0.windows(2)
        .map(|w| ((w[1].x - w[0].x).powi(2) + (w[1].y - w[0].y).powi(2)).sqrt())
        .sum()
}

/// Liang–Barsky: the part of segment a→b inside the rectangle, if any.
fn clip_segment(a: Coord<f64>, b: Coord<f64>, r: [f64; 4]) -> Option<(Coord<f64>, Coord<f64>)> {
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.x - r[0]),
        (dx, r[2] - a.x),
        (-dy, a.y - r[1]),
        (dy, r[3] - a.y),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
            if t0 > t1 {
                return None;
            }
        }
    }
    Some((
        Coord {
            x: a.x + t0 * dx,
            y: a.y + t0 * dy,
        },
        Coord {
            x: a.x + t1 * dx,
            y: a.y + t1 * dy,
        },
    ))
}

/// The pieces of a polyline inside the rectangle.
pub fn clip_line(pts: &[Coord<f64>], r: [f64; 4]) -> Vec<Vec<Coord<f64>>> {
    let mut out: Vec<Vec<Coord<f64>>> = Vec::new();
    let mut open = false;
    for w in pts.windows(2) {
        match clip_segment(w[0], w[1], r) {
            Some((a, b)) => {
                let joins = open && out.last().and_then(|l| l.last()) == Some(&a);
                if !joins {
                    out.push(vec![a]);
                }
                out.last_mut().expect("pushed").push(b);
                // The piece continues only if the segment left the rectangle at its end.
                open = b == w[1];
            }
            None => open = false,
        }
    }
    out
}

/// Sutherland–Hodgman: a ring clipped to the rectangle (convex, so one ring out).
pub fn clip_ring(ring: &[Coord<f64>], r: [f64; 4]) -> Vec<Coord<f64>> {
    let mut pts: Vec<Coord<f64>> = ring.to_vec();
    if pts.len() > 1 && pts.first() == pts.last() {
        pts.pop();
    }
    // (inside test, intersection) for each of the four edges.
    for edge in 0..4 {
        if pts.is_empty() {
            break;
        }
        let inside = |c: &Coord<f64>| match edge {
            0 => c.x >= r[0],
            1 => c.x <= r[2],
            2 => c.y >= r[1],
            _ => c.y <= r[3],
        };
        let cut = |a: &Coord<f64>, b: &Coord<f64>| {
            let t = match edge {
                0 => (r[0] - a.x) / (b.x - a.x),
                1 => (r[2] - a.x) / (b.x - a.x),
                2 => (r[1] - a.y) / (b.y - a.y),
                _ => (r[3] - a.y) / (b.y - a.y),
            };
            Coord {
                x: a.x + t * (b.x - a.x),
                y: a.y + t * (b.y - a.y),
            }
        };
        let input = std::mem::take(&mut pts);
        for i in 0..input.len() {
            let cur = &input[i];
            let prev = &input[(i + input.len() - 1) % input.len()];
            match (inside(prev), inside(cur)) {
                (true, true) => pts.push(*cur),
                (true, false) => pts.push(cut(prev, cur)),
                (false, true) => {
                    pts.push(cut(prev, cur));
                    pts.push(*cur);
                }
                (false, false) => {}
            }
        }
    }
    pts
}

fn to_tile(pts: &[Coord<f64>], ox: f64, oy: f64) -> Vec<[i32; 2]> {
    let mut out: Vec<[i32; 2]> = Vec::with_capacity(pts.len());
    for c in pts {
        let p = [(c.x - ox).round() as i32, (c.y - oy).round() as i32];
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    out
}

/// Cuts every feature visible at `z` into that zoom's tiles.
pub fn cut_zoom(feats: &[Feat], z: u8, opt: &TileOptions) -> ZoomOutcome {
    let n = 1u32 << z;
    let ext = f64::from(EXTENT);
    let scale = f64::from(n) * ext;
    let tol = if z >= opt.maxzoom {
        opt.tolerance_max
    } else {
        opt.tolerance
    };
    // One 256-px pixel is 16 tile units.
    let px = ext / 256.0;
    let min_area = if z >= opt.maxzoom {
        0.0
    } else {
        opt.min_area_px * px * px
    };
    let b = opt.buffer;
    let mut tiles: HashMap<(u32, u32), Vec<LayerBuilder>> = HashMap::new();
    let tile_range = |lo: f64, hi: f64| {
        let first = ((lo - b) / ext).floor().max(0.0) as u32;
        let last = (((hi + b) / ext).floor().max(0.0) as u32).min(n - 1);
        first..=last
    };
    for f in feats.iter().filter(|f| f.minzoom <= z) {
        let bb = [
            f.bbox[0] * scale,
            f.bbox[1] * scale,
            f.bbox[2] * scale,
            f.bbox[3] * scale,
        ];
        match &f.geom {
            WorldGeom::Point(p) => {
                let (x, y) = (p[0] * scale, p[1] * scale);
                let (tx, ty) = ((x / ext).floor() as u32, (y / ext).floor() as u32);
                if tx >= n || ty >= n {
                    continue;
                }
                let (ox, oy) = (f64::from(tx) * ext, f64::from(ty) * ext);
                let g = Geom::Points(vec![[(x - ox).round() as i32, (y - oy).round() as i32]]);
                tiles
                    .entry((tx, ty))
                    .or_insert_with(new_layers)
                    .get_mut(f.layer)
                    .expect("layer")
                    .add(f.id, &g, &f.props);
            }
            WorldGeom::Line(pts) => {
                let ls = to_px(pts, scale).simplify(tol);
                if z < opt.maxzoom && line_len(&ls) < px {
                    continue;
                }
                for ty in tile_range(bb[1], bb[3]) {
                    // The row first, then each tile of it: a long feature is cut
                    // rows + columns times, not rows × columns times.
                    let oy = f64::from(ty) * ext;
                    let row = clip_line(&ls.0, [f64::MIN, oy - b, f64::MAX, oy + ext + b]);
                    for tx in tile_range(bb[0], bb[2]) {
                        let ox = f64::from(tx) * ext;
                        let r = [ox - b, oy - b, ox + ext + b, oy + ext + b];
                        let parts: Vec<Vec<[i32; 2]>> = row
                            .iter()
                            .flat_map(|piece| clip_line(piece, r))
                            .map(|p| to_tile(&p, ox, oy))
                            .filter(|p| p.len() >= 2)
                            .collect();
                        if parts.is_empty() {
                            continue;
                        }
                        tiles.entry((tx, ty)).or_insert_with(new_layers)[f.layer].add(
                            f.id,
                            &Geom::Lines(parts),
                            &f.props,
                        );
                    }
                }
            }
            WorldGeom::Area(rings) => {
                let rings: Vec<(bool, LineString<f64>)> = rings
                    .iter()
                    .map(|(outer, r)| (*outer, to_px(r, scale).simplify(tol)))
                    .filter(|(_, r)| r.0.len() >= 4)
                    .collect();
                let area: f64 = rings
                    .iter()
                    .map(|(e, r)| {
                        if *e {
                            ring_area_px(r)
                        } else {
                            -ring_area_px(r)
                        }
                    })
                    .sum();
                if area < min_area.max(1e-9) {
                    continue;
                }
                for ty in tile_range(bb[1], bb[3]) {
                    let oy = f64::from(ty) * ext;
                    let band = [f64::MIN, oy - b, f64::MAX, oy + ext + b];
                    let row: Vec<(bool, Vec<Coord<f64>>)> = rings
                        .iter()
                        .map(|(e, ring)| (*e, clip_ring(&ring.0, band)))
                        .collect();
                    if !row.iter().any(|(e, r)| *e && r.len() >= 3) {
                        continue;
                    }
                    for tx in tile_range(bb[0], bb[2]) {
                        let ox = f64::from(tx) * ext;
                        let r = [ox - b, oy - b, ox + ext + b, oy + ext + b];
                        let parts: Vec<(bool, Vec<[i32; 2]>)> = row
                            .iter()
                            .map(|(e, ring)| (*e, to_tile(&clip_ring(ring, r), ox, oy)))
                            .filter(|(_, p)| p.len() >= 3)
                            .collect();
                        if !parts.iter().any(|(e, _)| *e) {
                            continue;
                        }
                        tiles.entry((tx, ty)).or_insert_with(new_layers)[f.layer].add(
                            f.id,
                            &Geom::Polygon(parts),
                            &f.props,
                        );
                    }
                }
            }
        }
    }
    let mut out = ZoomOutcome::default();
    for ((x, y), layers) in tiles {
        let (bytes, trimmed) = encode_within(layers, opt.tile_budget);
        out.trimmed += u64::from(trimmed);
        if let Some(bytes) = bytes {
            out.tiles.push(((z, x, y), bytes));
        }
    }
    out.tiles.sort_by_key(|t| t.0);
    out
}

fn new_layers() -> Vec<LayerBuilder> {
    LAYERS.iter().map(|_| LayerBuilder::default()).collect()
}

/// Encodes the layers, dropping whole layers in [`DROP_ORDER`] until the tile fits the
/// budget. `None` when the tile ends up empty.
fn encode_within(layers: Vec<LayerBuilder>, budget: usize) -> (Option<Vec<u8>>, bool) {
    let mut tile = Tile {
        layers: layers
            .into_iter()
            .zip(LAYERS)
            .filter(|(l, _)| !l.is_empty())
            .map(|(l, name)| l.finish(name))
            .collect(),
    };
    let mut bytes = tile.encode_to_vec();
    let mut trimmed = false;
    for drop in DROP_ORDER {
        if bytes.len() <= budget {
            break;
        }
        tile.layers.retain(|l| l.name != *drop);
        bytes = tile.encode_to_vec();
        trimmed = true;
    }
    if tile.layers.is_empty() {
        (None, trimmed)
    } else {
        (Some(bytes), trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(x: f64, y: f64) -> Coord<f64> {
        Coord { x, y }
    }

    #[test]
    fn line_clipping_splits_at_the_edges() {
        let r = [0.0, 0.0, 10.0, 10.0];
        // In, out, back in: two pieces.
        let pieces = clip_line(&[c(1.0, 1.0), c(20.0, 1.0), c(20.0, 5.0), c(5.0, 5.0)], r);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0], vec![c(1.0, 1.0), c(10.0, 1.0)]);
        assert_eq!(pieces[1], vec![c(10.0, 5.0), c(5.0, 5.0)]);
        // Entirely inside: one piece with every point.
        let inside = clip_line(&[c(1.0, 1.0), c(2.0, 2.0), c(3.0, 1.0)], r);
        assert_eq!(inside, vec![vec![c(1.0, 1.0), c(2.0, 2.0), c(3.0, 1.0)]]);
        assert!(clip_line(&[c(20.0, 20.0), c(30.0, 30.0)], r).is_empty());
    }

    #[test]
    fn ring_clipping_keeps_the_inside() {
        let r = [0.0, 0.0, 10.0, 10.0];
        let big = [
            c(-5.0, -5.0),
            c(15.0, -5.0),
            c(15.0, 15.0),
            c(-5.0, 15.0),
            c(-5.0, -5.0),
        ];
        let got = clip_ring(&big, r);
        let ls = LineString(got.iter().chain(got.first()).copied().collect());
        assert!((ring_area_px(&ls) - 100.0).abs() < 1e-9, "{got:?}");
        let outside = [c(20.0, 20.0), c(30.0, 20.0), c(30.0, 30.0), c(20.0, 20.0)];
        assert!(clip_ring(&outside, r).is_empty());
    }

    #[test]
    fn projection_corners() {
        let p = project(0.0, 0.0);
        assert!((p[0] - 0.5).abs() < 1e-12 && (p[1] - 0.5).abs() < 1e-12);
        assert!(project(-180.0, 85.051_128)[1].abs() < 1e-6);
    }

    #[test]
    fn over_budget_tiles_shed_buildings_first() {
        let mut layers = new_layers();
        let square = Geom::Polygon(vec![(true, vec![[0, 0], [100, 0], [100, 100], [0, 100]])]);
        for i in 0..200 {
            layers[crate::features::layer_index("building")].add(i, &square, &[]);
        }
        layers[crate::features::layer_index("transportation")].add(
            1,
            &Geom::Lines(vec![vec![[0, 0], [5, 5]]]),
            &[("class", Prop::Str("primary".into()))],
        );
        let (bytes, trimmed) = encode_within(layers, 1000);
        assert!(trimmed);
        let feats = crate::mvt::decode_tile(&bytes.unwrap()).unwrap();
        assert_eq!(feats.len(), 1);
        assert_eq!(feats[0].layer, "transportation");
    }
}
