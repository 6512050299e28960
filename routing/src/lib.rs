//! The pedestrian network (no I/O): a walking graph built from OSM ways ([`build()`]), points
//! snapped to the nearest edge ([`Graph::snap`]), one-to-many walks with a cutoff and
//! point-to-point walks with their path ([`Search`]), and the versioned artifact format
//! ([`Graph::encode`], [`Graph::decode`]).
//!
//! Built by `import/` from an extract (OSM or the synthetic demo city), stored as the
//! `walk_graph` artifact, loaded by `api/`, used for the caller's nearest AEDs.
//!
//! # Storage
//!
//! Coordinates once per node (`i32` 1e-7 degrees), the adjacency as CSR arrays (`u32` offsets,
//! `u32` head + `u32` cost per arc, each edge in both directions), a `u32` component per node,
//! and an R-tree of the edge segments (`f32` metres in a local projection) for snapping.
//! Costs are centimetres of level walking, so one graph serves every walking speed.
//!
//! # Technique, and why
//!
//! Dijkstra from the caller, grown on demand (binary heap, generation-stamped per-node arrays
//! reused across queries), over a graph whose chains of degree-2 nodes are contracted into
//! single arcs ([`chains`]): the search settles junctions only, never enters dead ends, and
//! places each point by its position along its chain. The caller's question is "which of these
//! few candidates is nearest on foot", and the candidates are a few hundred metres to a couple
//! of kilometres away: a search that stops as soon as the candidates' costs are decided settles
//! only that neighbourhood, and one search answers every candidate. Contraction hierarchies
//! (the `fast_paths` crate) pay off on long point-to-point queries; here the preparation would
//! be redone at every import and each target would still cost a query (tens of µs by the
//! crate's own figures), and a bidirectional search helps one target, not many.
//!
//! Measured on `liechtenstein.osm.pbf` (79 894 nodes, of which 9 298 junctions and 2 273 dead
//! ends; 82 910 edges) with `cargo bench -p aednet-geoindex --bench walking` and `cargo bench
//! -p aednet-routing --bench routing`, before → after contracting chains (the first figures on
//! a busier machine): the caller's k = 1 query 55 → 6.2 µs median, k = 5 435 → 33 µs (goal
//! ≤ 50 µs), k = 5 with the routes drawn 43 µs; point-to-point 50–400 m with the path 66 →
//! 4.0 µs; one-to-many within 336 m to 10 targets 10.4 → 1.8 µs; ten targets in turn 149 →
//! 12.9 µs; snap 0.9 µs (an AED's snap is remembered by the caller's index). Build 72 ms,
//! decode of the artifact 48 ms. Memory: 86 bytes per node including the R-tree and the chains
//! (the whole-graph adjacency is dropped once the chains are built; `cargo test -p
//! aednet-routing --test liechtenstein -- --nocapture`).
//!
//! # Exactness
//!
//! Every edge costs at least its haversine length (penalties only add), and the off-network
//! legs are straight, so a walk is never shorter than the straight line between its ends: a
//! caller's candidates taken in straight-line order can stop once the straight-line bound
//! passes the k-th best walk, and the answer equals a search over every AED.

pub mod build;
pub mod chains;
pub mod codec;
pub mod graph;
pub mod search;
pub mod snap;

pub use build::{build, is_graph_node, is_walkable_way, BuildReport};
pub use codec::{DecodeError, FORMAT_VERSION};
pub use graph::{Edge, Graph, Projection};
pub use search::{with_scratch, Route, Scratch, Search};
pub use snap::{Snap, SnapOptions};

/// Metres of level walking in a cost (centimetres).
pub fn cost_m(cost_cm: u32) -> f64 {
    f64::from(cost_cm) / 100.0
}
