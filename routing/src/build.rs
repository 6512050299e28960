//! From OSM features to the walking graph: which ways a pedestrian may use and at what cost.
//!
//! - `highway=*`: footways, paths, pedestrian streets, steps, tracks, cycleways, bridleways,
//!   corridors, platforms, elevators and every ordinary road; not motorways, trunk roads
//!   (pedestrians are barred from them in most of Europe and China) unless `foot` allows, and
//!   not ways under construction, proposed or abandoned.
//! - `foot=no|private|use_sidepath`, or `access=no|private` without a `foot` that allows:
//!   not walkable. `indoor=corridor` ways are walkable without a `highway` tag.
//! - `highway=steps`: slower (stairs at ~0.35× walking speed up, 0.5× down: a cost factor of
//!   2.4 on each way), over the way's length or `step_count` × 0.3 m, whichever is longer.
//!   `highway=elevator` ways cost a 30 s wait.
//! - Barriers: `barrier=fence|wall` *ways* are not walkable and cut nothing — a footway that
//!   crosses a fence passes where it is mapped to (the crossing node has a gate, or the data
//!   would not connect them). Barrier *nodes* on a way (`gate`, `stile`, `bollard`, …) are
//!   passable unless `access=no|private` or `foot=no|private`; a point `barrier=fence|wall`
//!   blocks.
//! - `area=yes` pedestrian squares (closed `highway=pedestrian|footway` ways): walked along
//!   their outline, and straight across between the points where other ways meet them.
//! - `level`: kept out of the cost (floors are connected by the steps and elevators mapped
//!   between them); values that are not a small number are counted for the report.

use std::collections::{HashMap, HashSet};

use aednet_core::geo_util::LatLon;
use aednet_core::osm::{Extract, Way};
use aednet_core::Tags;

use crate::graph::{e7, Edge, Graph};

/// Cost factor of stairs: the mean of going up (1/0.35) and down (1/0.5) at walking speed.
pub const STEPS_FACTOR: f64 = 2.4;
/// Horizontal run of one step when `step_count` is mapped.
pub const STEP_RUN_M: f64 = 0.3;
/// Waiting for and riding an elevator, as metres of level walking at 1.4 m/s (30 s).
pub const ELEVATOR_M: f64 = 42.0;
/// Squares with more outline nodes than this are walked along the outline only.
const MAX_SQUARE_NODES: usize = 200;

/// Ways of these `highway` values are walkable (subject to `foot`/`access`).
const WALKABLE: &[&str] = &[
    "footway",
    "path",
    "pedestrian",
    "steps",
    "living_street",
    "residential",
    "service",
    "unclassified",
    "road",
    "tertiary",
    "tertiary_link",
    "secondary",
    "secondary_link",
    "primary",
    "primary_link",
    "track",
    "cycleway",
    "bridleway",
    "corridor",
    "platform",
    "elevator",
    "crossing",
    "sidewalk",
];
/// Walkable only when `foot` says so.
const FOOT_ONLY_IF_ALLOWED: &[&str] = &["trunk", "trunk_link", "motorway", "motorway_link"];

fn allows(v: Option<&str>) -> bool {
    matches!(v, Some("yes" | "designated" | "permissive" | "official"))
}

fn denies(v: Option<&str>) -> bool {
    matches!(v, Some("no" | "private"))
}

/// Whether a way with these tags is walkable (the import reads only these from the extract).
pub fn is_walkable_way(t: &Tags) -> bool {
    let get = |k: &str| t.get(k).map(String::as_str);
    let foot = get("foot");
    if denies(foot) || foot == Some("use_sidepath") {
        return false;
    }
    if denies(get("access")) && !allows(foot) {
        return false;
    }
    match get("highway") {
        Some(h) if WALKABLE.contains(&h) => true,
        Some(h) if FOOT_ONLY_IF_ALLOWED.contains(&h) => allows(foot),
        Some(_) => false,
        None => get("indoor") == Some("corridor"),
    }
}

/// Whether a tagged node matters to the graph (a barrier, possibly blocking).
pub fn is_graph_node(t: &Tags) -> bool {
    t.contains_key("barrier")
}

/// Whether a barrier node stops a pedestrian.
pub fn blocks(t: &Tags) -> bool {
    let get = |k: &str| t.get(k).map(String::as_str);
    let Some(barrier) = get("barrier") else {
        return false;
    };
    let foot = get("foot");
    if denies(foot) {
        return true;
    }
    if allows(foot) {
        return false;
    }
    if denies(get("access")) {
        return true;
    }
    matches!(
        barrier,
        "fence" | "wall" | "retaining_wall" | "city_wall" | "hedge" | "wire_fence"
    )
}

/// What the builder noticed, for the import report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BuildReport {
    pub ways_used: u64,
    pub ways_skipped: u64,
    pub self_loops: u64,
    pub zero_length_edges: u64,
    pub absurd_levels: u64,
    pub blocked_nodes: u64,
    pub squares_crossed: u64,
    /// Ways the extract reported as referring to nodes it did not have.
    pub ways_with_missing_nodes: u64,
}

impl BuildReport {
    /// Plain-language warnings about the input (empty when nothing is wrong).
    pub fn warnings(&self, g: &Graph) -> Vec<String> {
        let mut w = Vec::new();
        if g.node_count() == 0 {
            w.push(
                "no walkable ways in the extract: the walking network is empty; answers keep the straight-line model"
                    .to_string(),
            );
            return w;
        }
        if self.ways_with_missing_nodes > 0 {
            w.push(format!(
                "{} way(s) refer to nodes missing from the extract (cut at its edge?): kept what was there",
                self.ways_with_missing_nodes
            ));
        }
        if self.self_loops > 0 {
            w.push(format!("{} self-loop segment(s) dropped", self.self_loops));
        }
        if self.zero_length_edges > 0 {
            w.push(format!(
                "{} zero-length segment(s) (distinct nodes at one position) kept at no cost",
                self.zero_length_edges
            ));
        }
        if self.absurd_levels > 0 {
            w.push(format!(
                "{} way(s) with a level that is not a floor number (ignored)",
                self.absurd_levels
            ));
        }
        let tiny = g.component_sizes().iter().filter(|&&s| s < 50).count();
        let main = g.component_sizes().first().copied().unwrap_or(0);
        if g.component_count() > 1 && tiny * 2 > g.component_count() && tiny > 1000 {
            w.push(format!(
                "{tiny} of {} components have fewer than 50 nodes (the largest has {main} of {}): the network is fragmented; points are snapped to larger components when one is near",
                g.component_count(),
                g.node_count()
            ));
        } else if u64::from(main) * 2 < g.node_count() as u64 {
            w.push(format!(
                "the largest component holds only {main} of {} nodes: walks between parts of the map will fall back to straight lines",
                g.node_count()
            ));
        }
        w
    }
}

/// The walking cost of one way segment, centimetres.
fn segment_cost_cm(len_m: f64, factor: f64, fixed_m: f64) -> u32 {
    let c = (len_m * factor + fixed_m) * 100.0;
    if c.is_finite() {
        c.ceil().clamp(0.0, f64::from(u32::MAX / 4)) as u32
    } else {
        0
    }
}

fn level_is_absurd(level: &str) -> bool {
    !level.split([';', ',']).all(|p| {
        let p = p.trim();
        // "1-3" ranges are valid too.
        p.split('-').filter(|x| !x.is_empty()).all(|x| {
            x.trim()
                .parse::<f64>()
                .is_ok_and(|f| f.is_finite() && f.abs() <= 200.0)
        })
    })
}

/// Builds the graph from an extract's walkable ways (ways failing [`is_walkable_way`] and
/// nodes failing [`is_graph_node`] are ignored, so a full extract is fine too).
pub fn build(extract: &Extract) -> (Graph, BuildReport) {
    let mut report = BuildReport {
        ways_with_missing_nodes: extract.ways_with_missing_nodes,
        ..Default::default()
    };
    let blocked: HashSet<i64> = extract
        .nodes
        .iter()
        .filter(|n| blocks(&n.tags))
        .map(|n| n.id)
        .collect();
    let mut ids: HashMap<i64, u32> = HashMap::new();
    let mut coords: Vec<(i32, i32)> = Vec::new();
    let mut edges: Vec<Edge> = Vec::new();
    let mut uses: HashMap<u32, u32> = HashMap::new();
    let mut squares: Vec<&Way> = Vec::new();
    let mut id_of = |osm: i64, p: LatLon, coords: &mut Vec<(i32, i32)>| -> u32 {
        *ids.entry(osm).or_insert_with(|| {
            coords.push((e7(p.lat), e7(p.lon)));
            (coords.len() - 1) as u32
        })
    };
    for w in &extract.ways {
        if !is_walkable_way(&w.tags) || w.nodes.len() != w.coords.len() {
            report.ways_skipped += 1;
            continue;
        }
        if w.tag("level").is_some_and(level_is_absurd) {
            report.absurd_levels += 1;
        }
        let hw = w.tag("highway");
        let (factor, fixed_m) = match hw {
            Some("steps") => (STEPS_FACTOR, 0.0),
            Some("elevator") => (1.0, ELEVATOR_M),
            _ => (1.0, 0.0),
        };
        let steps: Option<f64> = if hw == Some("steps") {
            w.tag("step_count")
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0 && *s < 10_000.0)
        } else {
            None
        };
        let total_len: f64 = w.coords.windows(2).map(|p| p[0].distance_m(&p[1])).sum();
        // Mapped steps longer than the drawn way: stretch every segment alike.
        let stretch = match steps {
            Some(n) if total_len > 0.0 => (n * STEP_RUN_M / total_len).max(1.0),
            _ => 1.0,
        };
        let n_segs = (w.coords.len() - 1) as f64;
        report.ways_used += 1;
        for i in 0..w.nodes.len() - 1 {
            let (na, nb) = (w.nodes[i], w.nodes[i + 1]);
            if blocked.contains(&na) || blocked.contains(&nb) {
                report.blocked_nodes += 1;
                continue;
            }
            if na == nb {
                report.self_loops += 1;
                continue;
            }
            let (pa, pb) = (w.coords[i], w.coords[i + 1]);
            if !(pa.lat.is_finite()
                && pa.lon.is_finite()
                && pb.lat.is_finite()
                && pb.lon.is_finite())
            {
                continue;
            }
            let len = pa.distance_m(&pb);
            if len == 0.0 {
                report.zero_length_edges += 1;
            }
            let a = id_of(na, pa, &mut coords);
            let b = id_of(nb, pb, &mut coords);
            *uses.entry(a).or_default() += 1;
            *uses.entry(b).or_default() += 1;
            edges.push(Edge {
                a,
                b,
                cost_cm: segment_cost_cm(len * stretch, factor, fixed_m / n_segs),
            });
        }
        let square = w.tag("area") == Some("yes")
            && matches!(hw, Some("pedestrian" | "footway"))
            && w.is_closed()
            && w.nodes.len() <= MAX_SQUARE_NODES;
        if square {
            squares.push(w);
        }
    }
    // Across squares: between outline nodes that other ways also use (where people enter).
    for w in squares {
        let entries: Vec<(u32, LatLon)> = w
            .nodes
            .iter()
            .zip(&w.coords)
            .filter_map(|(osm, p)| {
                let id = *ids.get(osm)?;
                // An outline node is used twice by its own ring; more means another way.
                (uses.get(&id).copied().unwrap_or(0) > 2).then_some((id, *p))
            })
            .collect();
        if entries.len() < 2 {
            continue;
        }
        report.squares_crossed += 1;
        for i in 0..entries.len() {
            for j in i + 1..entries.len() {
                let (a, pa) = entries[i];
                let (b, pb) = entries[j];
                edges.push(Edge {
                    a,
                    b,
                    cost_cm: segment_cost_cm(pa.distance_m(&pb), 1.0, 0.0),
                });
            }
        }
    }
    (Graph::from_parts(coords, edges), report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aednet_core::osm::Node;

    fn tags(kv: &[(&str, &str)]) -> Tags {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn which_ways_are_walkable() {
        let yes = [
            &[("highway", "footway")][..],
            &[("highway", "residential")],
            &[("highway", "steps")],
            &[("highway", "motorway"), ("foot", "yes")],
            &[
                ("highway", "service"),
                ("access", "private"),
                ("foot", "yes"),
            ],
            &[("indoor", "corridor")],
        ];
        let no = [
            &[("highway", "motorway")][..],
            &[("highway", "trunk")],
            &[("highway", "construction")],
            &[("highway", "footway"), ("foot", "no")],
            &[("highway", "primary"), ("foot", "use_sidepath")],
            &[("highway", "service"), ("access", "private")],
            &[("barrier", "fence")],
            &[("waterway", "river")],
        ];
        for t in yes {
            assert!(is_walkable_way(&tags(t)), "{t:?}");
        }
        for t in no {
            assert!(!is_walkable_way(&tags(t)), "{t:?}");
        }
        assert!(!blocks(&tags(&[("barrier", "gate")])));
        assert!(!blocks(&tags(&[("barrier", "bollard")])));
        assert!(blocks(&tags(&[("barrier", "gate"), ("access", "no")])));
        assert!(!blocks(&tags(&[
            ("barrier", "gate"),
            ("access", "no"),
            ("foot", "yes")
        ])));
        assert!(blocks(&tags(&[("barrier", "fence")])));
        assert!(level_is_absurd("9999") && level_is_absurd("ground"));
        assert!(!level_is_absurd("0;1") && !level_is_absurd("-1") && !level_is_absurd("1-3"));
    }

    fn way(id: i64, t: &[(&str, &str)], nodes: &[(i64, f64, f64)]) -> Way {
        Way {
            id,
            tags: tags(t),
            nodes: nodes.iter().map(|n| n.0).collect(),
            coords: nodes
                .iter()
                .map(|n| LatLon { lat: n.1, lon: n.2 })
                .collect(),
        }
    }

    #[test]
    fn steps_cost_more_and_squares_are_crossed() {
        // Two parallel 111 m ways, one of them steps; a square whose corners two footways meet.
        let e = Extract {
            ways: vec![
                way(
                    1,
                    &[("highway", "footway")],
                    &[(1, 47.0, 9.5), (2, 47.001, 9.5)],
                ),
                way(
                    2,
                    &[("highway", "steps")],
                    &[(3, 47.0, 9.6), (4, 47.001, 9.6)],
                ),
                way(
                    3,
                    &[("highway", "pedestrian"), ("area", "yes")],
                    &[
                        (10, 47.1, 9.5),
                        (11, 47.1, 9.502),
                        (12, 47.102, 9.502),
                        (13, 47.102, 9.5),
                        (10, 47.1, 9.5),
                    ],
                ),
                way(
                    4,
                    &[("highway", "footway")],
                    &[(10, 47.1, 9.5), (20, 47.099, 9.499)],
                ),
                way(
                    5,
                    &[("highway", "footway")],
                    &[(12, 47.102, 9.502), (21, 47.103, 9.503)],
                ),
            ],
            nodes: vec![Node {
                id: 99,
                pos: LatLon { lat: 0.0, lon: 0.0 },
                tags: tags(&[("barrier", "gate")]),
            }],
            ..Default::default()
        };
        let (g, report) = build(&e);
        let cost = |a: usize, b: usize| -> u32 {
            // Nodes are numbered in order of first use.
            g.edge_cost(a as u32, b as u32).unwrap()
        };
        let (foot, steps) = (cost(0, 1), cost(2, 3));
        assert!(
            f64::from(steps) > 2.3 * f64::from(foot),
            "{steps} vs {foot}"
        );
        assert_eq!(report.squares_crossed, 1);
        // Across the square: corner 10 (node 4) to corner 12 (node 6) directly, ~270 m,
        // cheaper than around two sides (~370 m).
        let across = g.edge_cost(4, 6).expect("an edge across the square");
        assert!(across < 30_000 && across > 25_000, "{across}");
    }
}
