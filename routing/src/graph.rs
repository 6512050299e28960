//! The pedestrian graph: nodes with their coordinates (once), undirected edges as CSR arrays
//! with `u32` ids and costs, a connected-component id per node, and an R-tree of edge segments
//! for snapping.
//!
//! Costs are centimetres of *equivalent level walking* (`cost_cm`): an edge's length times its
//! penalty (stairs are slower), so a walking time is `cost / speed` for any speed (a caller at
//! 1.4 m/s, a rescuer at 2.3 m/s) and one graph serves both.

use crate::chains::Chains;
use aednet_core::geo_util::LatLon;
use rstar::primitives::Line;
use rstar::{PointDistance, RTree, RTreeObject, AABB};

/// One directed half of an edge in the CSR adjacency used while building.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Arc {
    pub head: u32,
    pub cost_cm: u32,
}

/// An undirected edge as built or stored: `a < b`, cost in centimetres.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub a: u32,
    pub b: u32,
    pub cost_cm: u32,
}

/// A segment of the R-tree: the projected end points (metres, `f32`) and the node ids.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub from: [f32; 2],
    pub to: [f32; 2],
    pub a: u32,
    pub b: u32,
}

impl RTreeObject for Segment {
    type Envelope = AABB<[f32; 2]>;
    fn envelope(&self) -> Self::Envelope {
        AABB::from_corners(self.from, self.to)
    }
}

impl PointDistance for Segment {
    fn distance_2(&self, point: &[f32; 2]) -> f32 {
        Line::new(self.from, self.to).distance_2(point)
    }
}

/// A local equirectangular projection around the graph's centre, in metres. Good to a few
/// centimetres over a city or a small country; only snapping uses it (costs are haversine).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    pub lat0: f64,
    pub lon0: f64,
    kx: f64,
    ky: f64,
}

impl Projection {
    pub fn new(lat0: f64, lon0: f64) -> Self {
        let ky = aednet_core::geo_util::EARTH_RADIUS_M * std::f64::consts::PI / 180.0;
        Self {
            lat0,
            lon0,
            kx: ky * lat0.to_radians().cos(),
            ky,
        }
    }

    pub fn project(&self, p: LatLon) -> [f64; 2] {
        [(p.lon - self.lon0) * self.kx, (p.lat - self.lat0) * self.ky]
    }

    pub fn unproject(&self, xy: [f64; 2]) -> LatLon {
        LatLon {
            lat: self.lat0 + xy[1] / self.ky,
            lon: self.lon0 + xy[0] / self.kx,
        }
    }
}

/// The walking network. Built by [`crate::build`] or decoded from its artifact
/// ([`Graph::decode`]); immutable once made, shared between threads.
#[derive(Debug)]
pub struct Graph {
    /// Coordinates in 1e-7 degrees (OSM's own precision), once per node.
    lat_e7: Vec<i32>,
    lon_e7: Vec<i32>,
    /// Undirected edges (the adjacency itself is held by `chains`).
    edge_count: usize,
    /// Connected component per node; 0 is the largest, then by decreasing size.
    component: Vec<u32>,
    component_sizes: Vec<u32>,
    segments: RTree<Segment>,
    projection: Projection,
    /// Sum of the edges' plain lengths (no penalties), metres.
    length_m: f64,
    /// The search graph over junctions (derived, not stored in the artifact).
    chains: Chains,
    /// Unique per graph made in this process (caches of snaps key on it).
    id: u64,
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub(crate) fn e7(x: f64) -> i32 {
    (x * 1e7).round() as i32
}

/// The whole adjacency as CSR arrays: built from the edges, used to find components and
/// chains, then dropped (the chains hold the adjacency the searches need).
pub(crate) struct Adjacency {
    first_out: Vec<u32>,
    arcs: Vec<Arc>,
}

/// CSR arrays over `n` nodes: the items of node `v` are `items[first_out[v]..first_out[v + 1]]`,
/// in the order `pairs` yields them. `pairs` is walked twice (count, then fill).
pub(crate) fn csr<T, I>(n: usize, pairs: impl Fn() -> I) -> (Vec<u32>, Vec<T>)
where
    T: Copy + Default,
    I: Iterator<Item = (u32, T)>,
{
    let mut first_out = vec![0u32; n + 1];
    for (from, _) in pairs() {
        first_out[from as usize + 1] += 1;
    }
    for v in 0..n {
        first_out[v + 1] += first_out[v];
    }
    let mut fill = first_out[..n].to_vec();
    let mut items = vec![T::default(); first_out[n] as usize];
    for (from, item) in pairs() {
        let slot = &mut fill[from as usize];
        items[*slot as usize] = item;
        *slot += 1;
    }
    (first_out, items)
}

impl Adjacency {
    fn new(n: usize, edges: &[Edge]) -> Self {
        let (first_out, arcs) = csr(n, || {
            edges.iter().flat_map(|e| {
                [(e.a, e.b), (e.b, e.a)].map(|(from, head)| {
                    (
                        from,
                        Arc {
                            head,
                            cost_cm: e.cost_cm,
                        },
                    )
                })
            })
        });
        Adjacency { first_out, arcs }
    }

    pub(crate) fn node_count(&self) -> usize {
        self.first_out.len() - 1
    }

    pub(crate) fn arcs_of(&self, v: u32) -> &[Arc] {
        let (s, e) = (
            self.first_out[v as usize] as usize,
            self.first_out[v as usize + 1] as usize,
        );
        &self.arcs[s..e]
    }
}

impl Graph {
    /// Makes the graph from nodes and undirected edges. Self-loops are dropped; of parallel
    /// edges the cheapest is kept. `edges` may come in any order with `a` and `b` either way.
    pub fn from_parts(coords: Vec<(i32, i32)>, mut edges: Vec<Edge>) -> Self {
        let n = coords.len();
        for e in &mut edges {
            if e.a > e.b {
                std::mem::swap(&mut e.a, &mut e.b);
            }
        }
        edges.retain(|e| e.a != e.b && (e.b as usize) < n);
        edges.sort_unstable();
        edges.dedup_by(|later, kept| later.a == kept.a && later.b == kept.b);
        let (lat_e7, lon_e7): (Vec<i32>, Vec<i32>) = coords.into_iter().unzip();

        let adj = Adjacency::new(n, &edges);
        let mut g = Graph {
            lat_e7,
            lon_e7,
            edge_count: edges.len(),
            component: Vec::new(),
            component_sizes: Vec::new(),
            segments: RTree::new(),
            projection: Projection::new(0.0, 0.0),
            length_m: 0.0,
            chains: Chains::default(),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
        g.projection = g.centre_projection();
        g.label_components(&adj);
        let mut length_m = 0.0;
        let segs: Vec<Segment> = edges
            .iter()
            .map(|e| {
                let (pa, pb) = (g.pos(e.a), g.pos(e.b));
                length_m += pa.distance_m(&pb);
                let (fa, fb) = (g.projection.project(pa), g.projection.project(pb));
                Segment {
                    from: [fa[0] as f32, fa[1] as f32],
                    to: [fb[0] as f32, fb[1] as f32],
                    a: e.a,
                    b: e.b,
                }
            })
            .collect();
        g.length_m = length_m;
        g.segments = RTree::bulk_load(segs);
        g.chains = Chains::build(&adj);
        g
    }

    fn centre_projection(&self) -> Projection {
        if self.lat_e7.is_empty() {
            return Projection::new(0.0, 0.0);
        }
        let (mut lo_lat, mut hi_lat) = (i32::MAX, i32::MIN);
        let (mut lo_lon, mut hi_lon) = (i32::MAX, i32::MIN);
        for (&la, &lo) in self.lat_e7.iter().zip(&self.lon_e7) {
            lo_lat = lo_lat.min(la);
            hi_lat = hi_lat.max(la);
            lo_lon = lo_lon.min(lo);
            hi_lon = hi_lon.max(lo);
        }
        let mid = |a: i32, b: i32| (f64::from(a) + f64::from(b)) / 2e7;
        Projection::new(mid(lo_lat, hi_lat), mid(lo_lon, hi_lon))
    }

    /// Components by breadth-first search, renumbered largest first.
    fn label_components(&mut self, adj: &Adjacency) {
        let n = self.node_count();
        let mut comp = vec![u32::MAX; n];
        let mut sizes: Vec<u32> = Vec::new();
        let mut queue: Vec<u32> = Vec::new();
        for s in 0..n {
            if comp[s] != u32::MAX {
                continue;
            }
            let id = sizes.len() as u32;
            comp[s] = id;
            queue.clear();
            queue.push(s as u32);
            let mut size = 0u32;
            while let Some(v) = queue.pop() {
                size += 1;
                for a in adj.arcs_of(v) {
                    let h = a.head as usize;
                    if comp[h] == u32::MAX {
                        comp[h] = id;
                        queue.push(a.head);
                    }
                }
            }
            sizes.push(size);
        }
        let mut order: Vec<u32> = (0..sizes.len() as u32).collect();
        order.sort_by_key(|&c| (std::cmp::Reverse(sizes[c as usize]), c));
        let mut rename = vec![0u32; sizes.len()];
        for (new, &old) in order.iter().enumerate() {
            rename[old as usize] = new as u32;
        }
        for c in &mut comp {
            *c = rename[*c as usize];
        }
        self.component_sizes = order.iter().map(|&c| sizes[c as usize]).collect();
        self.component = comp;
    }

    pub fn node_count(&self) -> usize {
        self.lat_e7.len()
    }

    /// This graph's identity in this process: two graphs never share one, even when decoded
    /// from the same artifact (what a cache of snaps keys on).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Undirected edges.
    pub fn edge_count(&self) -> usize {
        self.edge_count
    }

    pub fn component_count(&self) -> usize {
        self.component_sizes.len()
    }

    /// Node counts of the components, largest first.
    pub fn component_sizes(&self) -> &[u32] {
        &self.component_sizes
    }

    pub fn component(&self, v: u32) -> u32 {
        self.component[v as usize]
    }

    /// Total length of the walkable ways, metres (each edge once, no penalties).
    pub fn length_m(&self) -> f64 {
        self.length_m
    }

    pub fn pos(&self, v: u32) -> LatLon {
        LatLon {
            lat: f64::from(self.lat_e7[v as usize]) / 1e7,
            lon: f64::from(self.lon_e7[v as usize]) / 1e7,
        }
    }

    /// The cost of the edge between `a` and `b`, if they are adjacent.
    pub fn edge_cost(&self, a: u32, b: u32) -> Option<u32> {
        self.chains.edge_cost(a, b)
    }

    /// Nodes a search decides at: degree ≠ 2 (and one node of each ring of degree-2 nodes).
    pub fn junction_count(&self) -> usize {
        self.chains.junction_count()
    }

    /// Junctions of degree 1, which searches skip.
    pub fn dead_end_count(&self) -> usize {
        self.chains.dead_end_count()
    }

    pub(crate) fn chains(&self) -> &Chains {
        &self.chains
    }

    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    pub(crate) fn segments(&self) -> &RTree<Segment> {
        &self.segments
    }

    /// Every undirected edge once (`a < b`), chain by chain.
    pub fn edges(&self) -> impl Iterator<Item = Edge> + '_ {
        self.chains.edges()
    }

    /// Bytes held on the heap (arrays at capacity, R-tree nodes estimated from their size).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let arrays = self.lat_e7.capacity() * 4
            + self.lon_e7.capacity() * 4
            + self.component.capacity() * 4
            + self.component_sizes.capacity() * 4;
        // Every segment is a leaf entry of the tree (an enum the size of a parent node); inner
        // nodes add about one entry per `MAX_SIZE` (6) leaves.
        let entry = size_of::<rstar::RTreeNode<Segment>>();
        arrays + self.segments.size() * entry * 7 / 6 + self.chains.heap_bytes()
    }

    pub(crate) fn coords_e7(&self) -> impl Iterator<Item = (i32, i32)> + '_ {
        self.lat_e7.iter().copied().zip(self.lon_e7.iter().copied())
    }
}
