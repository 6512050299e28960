//! Snapping a point to the nearest *edge* of the graph (not the nearest node: a point beside a
//! long street belongs to the street, not to its far corner). The off-network leg from the
//! point to its snap is walked straight.

use aednet_core::geo_util::LatLon;

use crate::chains::OnChain;
use crate::graph::Graph;

/// How points are put on the network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SnapOptions {
    /// Farther than this from any walkable way, a point is off the network (the caller's
    /// answer falls back to the straight-line model and says so).
    pub max_m: f64,
    /// Components with fewer nodes than this (a footway stub in a courtyard, a cut-off piece at
    /// the extract's edge) are used only when no larger one is within `max_m`: snapping to them
    /// would strand the point.
    pub min_component_nodes: u32,
}

impl Default for SnapOptions {
    fn default() -> Self {
        Self {
            max_m: 300.0,
            min_component_nodes: 50,
        }
    }
}

/// A point placed on an edge `a`–`b`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snap {
    pub a: u32,
    pub b: u32,
    /// Where on the edge, from `a` (0) to `b` (1).
    pub t: f64,
    /// The snapped position.
    pub point: LatLon,
    /// The straight leg from the original point to `point`, metres.
    pub off_m: f64,
    /// Cost from the snapped position along the edge to `a` and to `b` (centimetres).
    pub cost_a_cm: u32,
    pub cost_b_cm: u32,
    pub component: u32,
    /// Where the point lies on its chain ([`crate::chains`]), found once here so that the
    /// searches that use this snap (a cached AED snap serves every caller) never look it up.
    pub(crate) on: Option<OnChain>,
}

impl Snap {
    /// Whether both snaps lie on the same edge (then the walk may stay on it).
    pub fn same_edge(&self, other: &Snap) -> bool {
        self.a == other.a && self.b == other.b
    }

    /// Cost along the shared edge between two snaps on it.
    pub fn along(&self, other: &Snap) -> u32 {
        self.cost_a_cm.abs_diff(other.cost_a_cm)
    }
}

impl Graph {
    /// The nearest edge within `opts.max_m`, preferring components of at least
    /// `opts.min_component_nodes` nodes; `None` when no edge is that close.
    pub fn snap(&self, p: LatLon, opts: &SnapOptions) -> Option<Snap> {
        if !(p.lat.is_finite() && p.lon.is_finite()) {
            return None;
        }
        let q = self.projection().project(p);
        let qf = [q[0] as f32, q[1] as f32];
        // The projection is good to a few centimetres; a little slack keeps edges at exactly
        // `max_m` (by haversine) from being cut by rounding.
        let reach = opts.max_m * 1.001 + 1.0;
        let reach2 = (reach * reach) as f32;
        let mut fallback: Option<Snap> = None;
        for (seg, d2) in self.segments().nearest_neighbor_iter_with_distance_2(qf) {
            if d2 > reach2 {
                break;
            }
            let comp = self.component(seg.a);
            let big = self.component_sizes()[comp as usize] >= opts.min_component_nodes;
            if !big && fallback.is_some() {
                continue;
            }
            let a = [f64::from(seg.from[0]), f64::from(seg.from[1])];
            let b = [f64::from(seg.to[0]), f64::from(seg.to[1])];
            let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
            let len2 = dx * dx + dy * dy;
            let t = if len2 > 0.0 {
                (((q[0] - a[0]) * dx + (q[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (pa, pb) = (self.pos(seg.a), self.pos(seg.b));
            let point = LatLon {
                lat: pa.lat + t * (pb.lat - pa.lat),
                lon: pa.lon + t * (pb.lon - pa.lon),
            };
            let off_m = p.distance_m(&point);
            if off_m > opts.max_m {
                continue;
            }
            let share = |cost: u32| (f64::from(cost) * t).round() as u32;
            let (on, cost) = match self.chains().place(seg.a, seg.b, share) {
                Some((on, cost)) => (Some(on), cost),
                None => (None, 0),
            };
            let cost_a_cm = share(cost);
            let s = Snap {
                a: seg.a,
                b: seg.b,
                t,
                point,
                off_m,
                cost_a_cm,
                cost_b_cm: cost - cost_a_cm.min(cost),
                component: comp,
                on,
            };
            if big {
                return Some(s);
            }
            fallback = Some(s);
        }
        fallback
    }
}
