//! Reads the map features of an OSM PBF into one [`Extract`] for the builders of derived data
//! (walking graph, basemap, address index): each builder says which nodes, ways and
//! relations it wants by their tags ([`FeatureFilter`]); the extract holds the union, with
//! every way's node positions resolved and multipolygon relations assembled into areas.
//!
//! Three passes, as in the AED importer: (1) wanted tagged nodes, ways and relations; (2) the
//! member ways of the wanted relations; (3) the positions of every node those ways use. A way
//! whose nodes are partly missing (cut at the extract's edge) keeps the nodes that are there;
//! a relation whose rings do not close is skipped and counted.

use std::collections::{HashMap, HashSet};

use aednet_core::geo_util::LatLon;
use aednet_core::osm::{Area, Extract, Node, Origin, Polygon, Way};
use aednet_core::Tags;
use geo::Coord;
use osmpbf::{Element, ElementReader, RelMemberType};

use crate::osm::{assemble_rings, build_multipolygon};
use crate::ImportError;

/// Which features a builder wants, decided on tags alone.
#[derive(Clone, Copy)]
pub struct FeatureFilter {
    pub node: fn(&Tags) -> bool,
    pub way: fn(&Tags) -> bool,
    /// Multipolygon (and boundary) relations to assemble into [`Area`]s.
    pub area: fn(&Tags) -> bool,
}

impl std::fmt::Debug for FeatureFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FeatureFilter")
    }
}

/// Counts of what was skipped while reading, for the import report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractNotes {
    /// Relations whose member ways are missing or whose rings do not close.
    pub areas_skipped: u64,
}

fn tags_of<'a>(it: impl Iterator<Item = (&'a str, &'a str)>) -> Tags {
    it.map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn pbf_err(e: osmpbf::Error) -> ImportError {
    ImportError::Pbf(e.to_string())
}

struct RawWay {
    id: i64,
    tags: Tags,
    refs: Vec<i64>,
}

struct RawRelation {
    id: i64,
    tags: Tags,
    outer: Vec<i64>,
    inner: Vec<i64>,
}

/// Reads the features any of `filters` wants. `progress` is told each finished pass (1–3).
pub fn read_extract(
    bytes: &[u8],
    filters: &[FeatureFilter],
    mut progress: impl FnMut(u8),
) -> Result<(Extract, ExtractNotes), ImportError> {
    let want_node = |t: &Tags| filters.iter().any(|f| (f.node)(t));
    let want_way = |t: &Tags| filters.iter().any(|f| (f.way)(t));
    let want_area = |t: &Tags| filters.iter().any(|f| (f.area)(t));
    let mut nodes: Vec<Node> = Vec::new();
    let mut ways: Vec<RawWay> = Vec::new();
    let mut relations: Vec<RawRelation> = Vec::new();

    // Pass 1.
    ElementReader::new(bytes)
        .for_each(|el| match el {
            Element::Node(n) => {
                let tags = tags_of(n.tags());
                if !tags.is_empty() && want_node(&tags) {
                    nodes.push(Node {
                        id: n.id(),
                        pos: LatLon {
                            lat: n.lat(),
                            lon: n.lon(),
                        },
                        tags,
                    });
                }
            }
            Element::DenseNode(n) => {
                let mut it = n.tags().peekable();
                if it.peek().is_some() {
                    let tags = tags_of(it);
                    if want_node(&tags) {
                        nodes.push(Node {
                            id: n.id(),
                            pos: LatLon {
                                lat: n.lat(),
                                lon: n.lon(),
                            },
                            tags,
                        });
                    }
                }
            }
            Element::Way(w) => {
                let tags = tags_of(w.tags());
                if !tags.is_empty() && want_way(&tags) {
                    ways.push(RawWay {
                        id: w.id(),
                        tags,
                        refs: w.refs().collect(),
                    });
                }
            }
            Element::Relation(r) => {
                let tags = tags_of(r.tags());
                let kind = tags.get("type").map(String::as_str);
                if matches!(kind, Some("multipolygon" | "boundary")) && want_area(&tags) {
                    let mut rel = RawRelation {
                        id: r.id(),
                        tags,
                        outer: vec![],
                        inner: vec![],
                    };
                    for m in r.members() {
                        if m.member_type == RelMemberType::Way {
                            if m.role().unwrap_or("") == "inner" {
                                rel.inner.push(m.member_id);
                            } else {
                                rel.outer.push(m.member_id);
                            }
                        }
                    }
                    relations.push(rel);
                }
            }
        })
        .map_err(pbf_err)?;
    progress(1);

    // Pass 2: member ways of the relations.
    let wanted_ways: HashSet<i64> = relations
        .iter()
        .flat_map(|r| r.outer.iter().chain(&r.inner))
        .copied()
        .collect();
    let mut member_ways: HashMap<i64, Vec<i64>> = HashMap::new();
    if !wanted_ways.is_empty() {
        ElementReader::new(bytes)
            .for_each(|el| {
                if let Element::Way(w) = el {
                    if wanted_ways.contains(&w.id()) {
                        member_ways.insert(w.id(), w.refs().collect());
                    }
                }
            })
            .map_err(pbf_err)?;
    }
    progress(2);

    // Pass 3: node positions.
    let wanted_nodes: HashSet<i64> = member_ways
        .values()
        .flatten()
        .chain(ways.iter().flat_map(|w| w.refs.iter()))
        .copied()
        .collect();
    let mut coords: HashMap<i64, Coord<f64>> = HashMap::with_capacity(wanted_nodes.len());
    if !wanted_nodes.is_empty() {
        ElementReader::new(bytes)
            .for_each(|el| {
                let (id, lat, lon) = match el {
                    Element::Node(n) => (n.id(), n.lat(), n.lon()),
                    Element::DenseNode(n) => (n.id(), n.lat(), n.lon()),
                    _ => return,
                };
                if wanted_nodes.contains(&id) {
                    coords.insert(id, Coord { x: lon, y: lat });
                }
            })
            .map_err(pbf_err)?;
    }
    progress(3);

    let mut extract = Extract {
        nodes,
        origin: Origin::Osm,
        ..Default::default()
    };
    for w in ways {
        let mut ids = Vec::with_capacity(w.refs.len());
        let mut pts = Vec::with_capacity(w.refs.len());
        for r in &w.refs {
            if let Some(c) = coords.get(r) {
                ids.push(*r);
                pts.push(LatLon { lat: c.y, lon: c.x });
            }
        }
        if ids.len() < w.refs.len() {
            extract.ways_with_missing_nodes += 1;
        }
        if ids.len() >= 2 {
            extract.ways.push(Way {
                id: w.id,
                tags: w.tags,
                nodes: ids,
                coords: pts,
            });
        }
    }
    let mut notes = ExtractNotes::default();
    for r in relations {
        let outer = assemble_rings(&r.outer, &member_ways, &coords);
        let inner = assemble_rings(&r.inner, &member_ways, &coords);
        let (Ok(outer), Ok(inner)) = (outer, inner) else {
            notes.areas_skipped += 1;
            continue;
        };
        if outer.is_empty() {
            notes.areas_skipped += 1;
            continue;
        }
        let mp = build_multipolygon(outer, inner);
        let ring = |ls: &geo::LineString<f64>| -> Vec<LatLon> {
            ls.0.iter().map(|c| LatLon { lat: c.y, lon: c.x }).collect()
        };
        extract.areas.push(Area {
            id: r.id,
            tags: r.tags,
            polygons: mp
                .0
                .iter()
                .map(|p| Polygon {
                    outer: ring(p.exterior()),
                    inner: p.interiors().iter().map(ring).collect(),
                })
                .collect(),
        });
    }
    Ok((extract, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(_: &Tags) -> bool {
        true
    }
    fn highway(t: &Tags) -> bool {
        t.contains_key("highway")
    }
    fn none(_: &Tags) -> bool {
        false
    }

    /// The real extract: ways come with every node position; a filter narrows what is kept.
    #[test]
    fn liechtenstein_ways_have_positions() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/liechtenstein.osm.pbf"
        );
        let bytes = std::fs::read(path).expect("../shared/data/liechtenstein.osm.pbf");
        let filter = FeatureFilter {
            node: none,
            way: highway,
            area: none,
        };
        let mut passes = vec![];
        let (e, _) = read_extract(&bytes, &[filter], |p| passes.push(p)).unwrap();
        assert_eq!(passes, vec![1, 2, 3]);
        assert!(e.ways.len() > 5000, "{} highway ways", e.ways.len());
        assert!(e.ways.iter().all(|w| w.tags.contains_key("highway")
            && w.nodes.len() == w.coords.len()
            && w.coords.len() >= 2));
        let b = e.bounds().unwrap();
        assert!(b.min_lat > 46.9 && b.max_lat < 47.4 && b.min_lon > 9.3 && b.max_lon < 9.8);
        assert!(e.nodes.is_empty() && e.areas.is_empty());
        // Union of filters: areas (water, landuse multipolygons) come assembled.
        let all = FeatureFilter {
            node: none,
            way: none,
            area: any,
        };
        let (e, _) = read_extract(&bytes, &[filter, all], |_| {}).unwrap();
        assert!(!e.areas.is_empty());
        assert!(e
            .areas
            .iter()
            .all(|a| a.polygons.iter().all(|p| p.outer.first() == p.outer.last())));
    }
}
