//! Reads the walkable ways of `../shared/data/liechtenstein.osm.pbf` into an `Extract` with
//! osmpbf alone (the importer does the same through `import/`; this keeps the routing crate's
//! tests and benches free of the store).

use std::collections::HashMap;

use aednet_core::geo_util::LatLon;
use aednet_core::osm::{Extract, Node, Way};
use aednet_core::Tags;
use osmpbf::{Element, ElementReader};

/// `shared/data/liechtenstein.osm.pbf` beside the repository (the nearest ancestor holding
/// it: `../shared` of the repository, or further up for a git worktree).
pub fn path() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared/data/liechtenstein.osm.pbf"))
        .find(|p| p.exists())
        .unwrap_or_else(|| here.join("../../shared/data/liechtenstein.osm.pbf"))
}

/// What the walking tests need beside the walkable ways.
#[allow(dead_code)]
#[derive(Debug, Default)]
pub struct Extras {
    /// `emergency=defibrillator` nodes.
    pub aeds: Vec<Node>,
    /// Rivers, canals, railways, motorways and trunk roads: lines a walker cannot simply cross.
    pub barriers: Vec<(Tags, Vec<LatLon>)>,
}

fn is_barrier_line(t: &Tags) -> bool {
    let get = |k: &str| t.get(k).map(String::as_str);
    matches!(get("waterway"), Some("river" | "canal"))
        || get("railway") == Some("rail")
        || matches!(get("highway"), Some("motorway" | "trunk"))
}

#[allow(dead_code)]
pub fn read(path: &std::path::Path) -> Extract {
    read_with_extras(path).0
}

pub fn read_with_extras(path: &std::path::Path) -> (Extract, Extras) {
    let bytes = std::fs::read(path).expect("../shared/data/liechtenstein.osm.pbf");
    let tags = |it: &mut dyn Iterator<Item = (&str, &str)>| -> Tags {
        it.map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let mut ways: Vec<(i64, Tags, Vec<i64>)> = Vec::new();
    let mut nodes: Vec<Node> = Vec::new();
    let mut coords: HashMap<i64, LatLon> = HashMap::new();
    let mut extras = Extras::default();
    let mut barrier_ways: Vec<(Tags, Vec<i64>)> = Vec::new();
    ElementReader::new(&bytes[..])
        .for_each(|el| match el {
            Element::Way(w) => {
                let t = tags(&mut w.tags());
                if aednet_routing::is_walkable_way(&t) {
                    ways.push((w.id(), t, w.refs().collect()));
                } else if is_barrier_line(&t) {
                    barrier_ways.push((t, w.refs().collect()));
                }
            }
            Element::Node(n) => {
                coords.insert(
                    n.id(),
                    LatLon {
                        lat: n.lat(),
                        lon: n.lon(),
                    },
                );
                let t = tags(&mut n.tags());
                let node = Node {
                    id: n.id(),
                    pos: LatLon {
                        lat: n.lat(),
                        lon: n.lon(),
                    },
                    tags: t,
                };
                if node.tags.get("emergency").map(String::as_str) == Some("defibrillator") {
                    extras.aeds.push(node.clone());
                }
                if aednet_routing::is_graph_node(&node.tags) {
                    nodes.push(node);
                }
            }
            Element::DenseNode(n) => {
                coords.insert(
                    n.id(),
                    LatLon {
                        lat: n.lat(),
                        lon: n.lon(),
                    },
                );
                let t = tags(&mut n.tags());
                let node = Node {
                    id: n.id(),
                    pos: LatLon {
                        lat: n.lat(),
                        lon: n.lon(),
                    },
                    tags: t,
                };
                if node.tags.get("emergency").map(String::as_str) == Some("defibrillator") {
                    extras.aeds.push(node.clone());
                }
                if aednet_routing::is_graph_node(&node.tags) {
                    nodes.push(node);
                }
            }
            Element::Relation(_) => {}
        })
        .expect("readable PBF");
    let mut e = Extract {
        nodes,
        ..Default::default()
    };
    for (id, tags, refs) in ways {
        let (ids, pts): (Vec<i64>, Vec<LatLon>) = refs
            .iter()
            .filter_map(|r| Some((*r, *coords.get(r)?)))
            .unzip();
        if ids.len() < refs.len() {
            e.ways_with_missing_nodes += 1;
        }
        if ids.len() >= 2 {
            e.ways.push(Way {
                id,
                tags,
                nodes: ids,
                coords: pts,
            });
        }
    }
    for (t, refs) in barrier_ways {
        let pts: Vec<LatLon> = refs.iter().filter_map(|r| coords.get(r).copied()).collect();
        extras.barriers.push((t, pts));
    }
    (e, extras)
}
