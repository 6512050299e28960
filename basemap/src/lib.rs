//! The street basemap: the map features of an import (an OSM extract or the synthetic demo
//! city, both an [`Extract`]) as Mapbox Vector Tiles, zoom 8–16, in one [`archive`] that the
//! import stores as the `basemap` artifact and `aednet serve` serves at `/tiles/…`.
//!
//! No I/O: [`build`] takes the extract and returns the archive's bytes; [`features`] owns the
//! schema (layers, classes, minimum zooms), [`tiler`] the projection, simplification, clipping
//! and size budget, [`mvt`] the wire format.

pub mod archive;
pub mod features;
pub mod mvt;
pub mod tiler;

use std::collections::HashMap;

use aednet_core::osm::{Extract, Origin};

pub use archive::{Archive, ArchiveError, Meta};
use features::{layer_index, LAYERS};
use mvt::Prop;
pub use tiler::TileOptions;
use tiler::{bbox_of, project, Feat, WorldGeom};

/// A finished build: the archive's bytes and what it holds.
#[derive(Debug)]
pub struct Built {
    pub bytes: Vec<u8>,
    pub meta: Meta,
    /// Uncompressed MVT bytes of all tiles (the compressed size is `bytes.len()`).
    pub raw_bytes: u64,
}

impl Built {
    /// The import report's line.
    pub fn summary(&self) -> String {
        let m = &self.meta;
        let n = |k: &str| m.features.get(k).copied().unwrap_or(0);
        format!(
            "{} tiles z{}–{} ({:.1} MB), {} roads and paths, {} buildings, {} water, {} land use, {} places{}",
            m.tiles,
            m.minzoom,
            m.maxzoom,
            self.bytes.len() as f64 / 1e6,
            n("transportation"),
            n("building"),
            n("water") + n("waterway"),
            n("landuse"),
            n("place"),
            if m.trimmed > 0 {
                format!(", {} tiles over budget trimmed", m.trimmed)
            } else {
                String::new()
            }
        )
    }
}

fn line(coords: &[aednet_core::LatLon]) -> Vec<[f64; 2]> {
    coords.iter().map(|c| project(c.lon, c.lat)).collect()
}

fn push(
    feats: &mut Vec<Feat>,
    id: i64,
    layer: &str,
    minzoom: u8,
    props: Vec<(&'static str, Prop)>,
    geom: WorldGeom,
) {
    let bbox = match &geom {
        WorldGeom::Point(p) => [p[0], p[1], p[0], p[1]],
        WorldGeom::Line(l) => bbox_of(l.iter()),
        WorldGeom::Area(r) => bbox_of(r.iter().filter(|r| r.0).flat_map(|r| r.1.iter())),
    };
    feats.push(Feat {
        id: id as u64,
        layer: layer_index(layer),
        minzoom,
        props,
        geom,
        bbox,
    });
}

fn class(c: &'static str) -> (&'static str, Prop) {
    ("class", Prop::Str(c.to_string()))
}

/// The features of `e` in basemap form, in extract order (stable output for stable input).
pub fn collect(e: &Extract) -> Vec<Feat> {
    let mut feats = Vec::new();
    for n in &e.nodes {
        if let Some((c, minz, rank)) = features::place_class(&n.tags) {
            let mut props = vec![class(c), ("rank", Prop::Int(rank))];
            props.extend(features::names(&n.tags));
            push(
                &mut feats,
                n.id,
                "place",
                minz,
                props,
                WorldGeom::Point(project(n.pos.lon, n.pos.lat)),
            );
        }
    }
    for w in &e.ways {
        let t = &w.tags;
        if let Some((c, minz)) = features::transport_class(t) {
            let mut props = vec![class(c)];
            if t.get("bridge").is_some_and(|v| v != "no") {
                props.push(("brunnel", Prop::Str("bridge".into())));
            } else if t.get("tunnel").is_some_and(|v| v != "no") {
                props.push(("brunnel", Prop::Str("tunnel".into())));
            }
            push(
                &mut feats,
                w.id,
                "transportation",
                minz,
                props,
                WorldGeom::Line(line(&w.coords)),
            );
            if t.contains_key("name") && c != "rail" && c != "transit" {
                let mut props = vec![class(c)];
                props.extend(features::names(t));
                let minz = if c == "path" || c == "track" || c == "service" {
                    15
                } else {
                    minz.max(13)
                };
                push(
                    &mut feats,
                    w.id,
                    "transportation_name",
                    minz,
                    props,
                    WorldGeom::Line(line(&w.coords)),
                );
            }
        }
        if let Some((c, minz)) = features::waterway_class(t) {
            let mut props = vec![class(c)];
            props.extend(features::names(t));
            push(
                &mut feats,
                w.id,
                "waterway",
                minz,
                props,
                WorldGeom::Line(line(&w.coords)),
            );
        }
        if !w.is_closed() {
            continue;
        }
        let ring = || WorldGeom::Area(vec![(true, line(&w.coords))]);
        if features::is_water_area(t) {
            push(&mut feats, w.id, "water", 8, vec![class("lake")], ring());
        } else if let Some((c, minz)) = features::landuse_class(t) {
            push(&mut feats, w.id, "landuse", minz, vec![class(c)], ring());
        }
        if features::is_building(t) {
            push(&mut feats, w.id, "building", 14, vec![], ring());
        }
    }
    for a in &e.areas {
        let t = &a.tags;
        let rings = || {
            WorldGeom::Area(
                a.polygons
                    .iter()
                    .flat_map(|p| {
                        std::iter::once((true, line(&p.outer)))
                            .chain(p.inner.iter().map(|r| (false, line(r))))
                    })
                    .collect(),
            )
        };
        if let Some((level, minz)) = features::admin_level(t) {
            for p in &a.polygons {
                push(
                    &mut feats,
                    a.id,
                    "boundary",
                    minz,
                    vec![("admin_level", Prop::Int(level))],
                    WorldGeom::Line(line(&p.outer)),
                );
            }
        } else if features::is_water_area(t) {
            push(&mut feats, a.id, "water", 8, vec![class("lake")], rings());
        } else if let Some((c, minz)) = features::landuse_class(t) {
            push(&mut feats, a.id, "landuse", minz, vec![class(c)], rings());
        } else if features::is_building(t) {
            push(&mut feats, a.id, "building", 14, vec![], rings());
        }
    }
    feats
}

/// Builds the archive from `e`. `progress` is told each finished zoom.
pub fn build(e: &Extract, opt: &TileOptions, mut progress: impl FnMut(u8)) -> Built {
    let feats = collect(e);
    let mut counts: HashMap<String, u64> = HashMap::new();
    for f in &feats {
        *counts.entry(LAYERS[f.layer].to_string()).or_default() += 1;
    }
    let mut tiles = Vec::new();
    let (mut trimmed, mut raw_bytes) = (0u64, 0u64);
    for z in opt.minzoom..=opt.maxzoom {
        let out = tiler::cut_zoom(&feats, z, opt);
        trimmed += out.trimmed;
        for (id, bytes) in out.tiles {
            raw_bytes += bytes.len() as u64;
            tiles.push((id, archive::gzip(&bytes)));
        }
        progress(z);
    }
    let bounds = match e.bounds() {
        Some(b) => [b.min_lon, b.min_lat, b.max_lon, b.max_lat],
        None => [0.0; 4],
    };
    let meta = Meta {
        format_version: archive::FORMAT_VERSION,
        minzoom: opt.minzoom,
        maxzoom: opt.maxzoom,
        bounds,
        center: [
            (bounds[0] + bounds[2]) / 2.0,
            (bounds[1] + bounds[3]) / 2.0,
            12.0,
        ],
        origin: e.origin.as_str().to_string(),
        attribution: e.origin.attribution().map(str::to_string),
        layers: LAYERS.iter().map(|l| l.to_string()).collect(),
        tiles: tiles.len() as u64,
        trimmed,
        features: counts,
    };
    let bytes = archive::write(&meta, &mut tiles);
    Built {
        bytes,
        meta,
        raw_bytes,
    }
}

/// Whether `origin` needs the OSM attribution (for callers that only have the origin).
pub fn attribution(origin: Origin) -> Option<&'static str> {
    origin.attribution()
}
