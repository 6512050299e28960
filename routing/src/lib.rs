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
//! Plain Dijkstra from the caller, grown on demand (binary heap, generation-stamped per-node
//! arrays reused across queries). The caller's question is "which of these few candidates is
//! nearest on foot", and the candidates are a few hundred metres away: a search that stops as
//! soon as the candidates' costs are decided settles only that neighbourhood, and one search
//! answers every candidate. Contraction hierarchies (the `fast_paths` crate) pay off on long
//! point-to-point queries; here the preparation would be redone at every import and each
//! target would still cost a query (tens of µs by the crate's own figures), and a
//! bidirectional search helps one target, not many.
//!
//! Measured on `liechtenstein.osm.pbf` (79 894 nodes, 82 910 edges, 2 cores shared with other
//! builds) with `cargo bench -p aednet-routing --bench routing`: build 140 ms, decode of the
//! artifact 82 ms, snap 2.4 µs, one-to-many within 336 m (a 4-minute round trip) to 10 targets
//! 10.4 µs, point-to-point 50–400 m with the path 66 µs, ten targets 50–400 m away in turn
//! without a cutoff 149 µs. The caller's k = 1 query on the network is 55 µs, k = 5 435 µs
//! (`cargo bench -p aednet-geoindex --bench walking`): Liechtenstein's fifth usable AED is often
//! a kilometre or more away, and every graph node is an OSM way node. The next step, if the
//! 50 µs goal for k = 5 matters, is contracting chains of degree-2 nodes into single edges
//! (3–5× fewer nodes to settle) before reaching for hierarchies. Memory: 81 bytes per node
//! including the R-tree (`cargo test -p aednet-routing --test liechtenstein --release --
//! --nocapture`).
//!
//! # Exactness
//!
//! Every edge costs at least its haversine length (penalties only add), and the off-network
//! legs are straight, so a walk is never shorter than the straight line between its ends: a
//! caller's candidates taken in straight-line order can stop once the straight-line bound
//! passes the k-th best walk, and the answer equals a search over every AED.

pub mod build;
mod chains;
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
