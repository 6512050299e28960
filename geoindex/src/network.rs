//! The caller's query on the walking network ([`aednet_routing::Graph`]): candidates from the
//! AED R-tree in straight-line order, each walk measured by one Dijkstra search from the
//! caller grown only as far as the ranking needs ([`NetworkLegs`]), so the answer is exactly
//! the k best round trips over every AED ([`GeoIndex::nearest_aeds_walking`]).
//!
//! Without a network, or for a caller farther than `max_snap_m` from any walkable way, the
//! straight-line model answers and the answer says why ([`QueryWalk`]). An AED off the network
//! or on a part of it the caller's part does not reach keeps the straight-line model too (its
//! result says `straight_line`).

use aednet_core::geo_util::LatLon;
use aednet_routing::{cost_m, Graph, Search, Snap, SnapOptions};

use crate::aed_index::{AedEntry, Filters, Leg, Legs, LineString, Nearest, WalkKind};
use crate::geo::GeoIndex;
use crate::walk::WalkModel;

/// How the query as a whole was answered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QueryWalk {
    /// On the walking network (individual AEDs may still say `straight_line`).
    Network {
        /// The caller's straight leg to the nearest walkable way, metres.
        to_network_m: f64,
    },
    /// No walking network is loaded (a database without an OSM import).
    NoNetwork,
    /// The caller is farther than `max_snap_m` from any walkable way.
    OffNetwork,
}

impl QueryWalk {
    /// `network` or `straight_line`, as the answer's `walk` field says.
    pub fn kind(&self) -> WalkKind {
        match self {
            QueryWalk::Network { .. } => WalkKind::Network,
            _ => WalkKind::StraightLine,
        }
    }

    /// Why the straight-line model was used, for people: `None` on the network.
    pub fn note(&self) -> Option<&'static str> {
        match self {
            QueryWalk::Network { .. } => None,
            QueryWalk::NoNetwork => Some("no_network"),
            QueryWalk::OffNetwork => Some("off_network"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NetworkAnswer {
    pub results: Vec<Nearest>,
    pub walk: QueryWalk,
}

/// Snap options for the walk model.
pub fn snap_options(walk: &WalkModel) -> SnapOptions {
    SnapOptions {
        max_m: walk.max_snap_m,
        ..SnapOptions::default()
    }
}

/// Walks from one caller to candidate AEDs on the network (a [`Legs`] oracle).
#[derive(Debug)]
pub struct NetworkLegs<'a> {
    graph: &'a Graph,
    search: Search<'a>,
    opts: SnapOptions,
    speed_mps: f64,
    /// Walks measured: AED id, its snap, the network cost (for drawing the chosen ones).
    walked: Vec<(i64, Snap, u32)>,
}

impl<'a> NetworkLegs<'a> {
    pub fn new(graph: &'a Graph, search: Search<'a>, walk: &WalkModel) -> Self {
        Self {
            graph,
            search,
            opts: snap_options(walk),
            speed_mps: walk.speed_mps,
            walked: Vec::new(),
        }
    }

    /// The walk to AED `id` as measured, from the caller's position `at` to the AED's `to`:
    /// the straight leg onto the network, the ways walked, the straight leg off it.
    pub fn route(&self, id: i64, at: LatLon, to: LatLon) -> Option<LineString> {
        let (_, t, cost) = self.walked.iter().rev().find(|w| w.0 == id)?;
        let mut pts = vec![at];
        pts.extend(self.search.path_to(t, *cost));
        pts.push(to);
        pts.dedup();
        Some(LineString::new(pts))
    }
}

impl Legs for NetworkLegs<'_> {
    fn leg(&mut self, e: &AedEntry, _straight_m: f64, limit_s: f64) -> Leg {
        let Some(t) = e.detail.snap.get(self.graph, e.pos, &self.opts) else {
            return Leg::StraightLine;
        };
        if t.component != self.search.source().component {
            return Leg::StraightLine;
        }
        let off = self.search.source().off_m + t.off_m;
        let limit_cm = if limit_s.is_finite() {
            let room = (limit_s * self.speed_mps - off) * 100.0;
            if room < 0.0 {
                return Leg::Beyond;
            }
            room.floor().min(f64::from(u32::MAX - 1)) as u32
        } else {
            u32::MAX - 1
        };
        match self.search.cost_to(&t, limit_cm) {
            Some(c) => {
                self.walked.push((e.id, t, c));
                let walk_m = off + cost_m(c);
                Leg::Network {
                    walk_s: walk_m / self.speed_mps,
                    walk_m,
                }
            }
            None => Leg::Beyond,
        }
    }
}

fn straight_route(at: LatLon, n: &Nearest) -> LineString {
    LineString::new([
        at,
        LatLon {
            lat: n.lat,
            lon: n.lon,
        },
    ])
}

impl GeoIndex {
    /// The caller's query on the walking network `graph` when there is one (see the module
    /// docs); `routes` adds each walk as a LineString (straight for straight-line answers).
    pub fn nearest_aeds_walking(
        &self,
        at: LatLon,
        k: usize,
        f: &Filters,
        walk: &WalkModel,
        graph: Option<&Graph>,
        routes: bool,
    ) -> NetworkAnswer {
        let straight = |why: QueryWalk| {
            let mut results = self.nearest_aeds(at, k, f, walk);
            if routes {
                for n in &mut results {
                    n.route = Some(straight_route(at, n));
                }
            }
            NetworkAnswer { results, walk: why }
        };
        let Some(graph) = graph.filter(|g| g.edge_count() > 0) else {
            return straight(QueryWalk::NoNetwork);
        };
        let opts = snap_options(walk);
        let Some(source) = graph.snap(at, &opts) else {
            return straight(QueryWalk::OffNetwork);
        };
        aednet_routing::with_scratch(|scratch| {
            let search = Search::new(graph, scratch, &source);
            let mut legs = NetworkLegs::new(graph, search, walk);
            let mut results = self.aeds().nearest_with(at, k, f, walk, &mut legs);
            if routes {
                for n in &mut results {
                    let to = LatLon {
                        lat: n.lat,
                        lon: n.lon,
                    };
                    n.route = match n.walk {
                        WalkKind::Network => legs.route(n.id, at, to),
                        WalkKind::StraightLine => None,
                    }
                    .or_else(|| Some(straight_route(at, n)));
                }
            }
            NetworkAnswer {
                results,
                walk: QueryWalk::Network {
                    to_network_m: source.off_m,
                },
            }
        })
    }
}
