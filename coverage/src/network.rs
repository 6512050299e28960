//! Coverage on the walking network: each cell centre snapped once ([`CellNetwork`]), and an
//! AED's trips to the cells around it measured by one search from the AED with a cutoff at
//! the horizon's walk (one-to-many). A cell or AED off the network, or on a part the other's
//! part does not reach, keeps the straight-line model — as in the caller's query.

use std::sync::Arc;

use aednet_core::LatLon;
use aednet_geoindex::{WalkKind, WalkModel};
use aednet_routing::{cost_m, Graph, Search, Snap, SnapOptions};

use crate::grid::Grid;
use crate::map::{Mode, Params};

/// The walking network as one grid sees it.
#[derive(Debug)]
pub struct CellNetwork {
    graph: Arc<Graph>,
    snaps: Vec<Option<Snap>>,
    opts: SnapOptions,
}

impl CellNetwork {
    /// Snaps every cell centre of `grid` (`[walk] max_snap_m`).
    pub fn new(graph: Arc<Graph>, grid: &Grid, walk: &WalkModel) -> Self {
        let opts = aednet_geoindex::network::snap_options(walk);
        let snaps = grid
            .cells
            .iter()
            .map(|c| graph.snap(c.center, &opts))
            .collect();
        Self { graph, snaps, opts }
    }

    pub fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }

    /// Cells whose centre is on the network.
    pub fn snapped_cells(&self) -> usize {
        self.snaps.iter().filter(|s| s.is_some()).count()
    }
}

impl Params {
    /// The longest straight line over which a link may exist when walks are on the network:
    /// no walk is shorter than the straight line (detour factor 1 as the bound).
    pub fn reach_network_m(&self) -> f64 {
        let walk_m = self.horizon() * self.walk.speed_mps;
        match self.mode {
            Mode::RoundTrip => walk_m / 2.0,
            Mode::OneWay => walk_m,
            Mode::Radius => self.reach_m(),
        }
    }

    /// [`Params::trip_s`] for a walk already timed on the network.
    pub fn trip_walking_s(
        &self,
        walk_s: f64,
        indoor: Option<bool>,
        floor: Option<f64>,
        locked: bool,
    ) -> f64 {
        let (one, round) = self.walk.fetch_times_walking(walk_s, indoor, floor, locked);
        match self.mode {
            Mode::RoundTrip => round,
            Mode::OneWay => one,
            Mode::Radius => walk_s,
        }
    }
}

/// An AED's (or a candidate site's) trips to the cells it may reach: (cell, trip seconds,
/// straight-line metres). On the network when `net` is given and the mode walks.
pub(crate) fn trips(
    grid: &Grid,
    p: &Params,
    net: Option<&CellNetwork>,
    pos: LatLon,
    indoor: Option<bool>,
    floor: Option<f64>,
    locked: bool,
) -> Vec<(u32, f64, f64)> {
    let straight = |d: f64| p.trip_s(d, indoor, floor, locked);
    let net = net.filter(|_| p.mode != Mode::Radius && p.walk_on == WalkKind::Network);
    let Some(net) = net else {
        return grid
            .within(pos, p.reach_m())
            .map(|(c, d)| (c, straight(d), d))
            .collect();
    };
    let Some(src) = net.graph.snap(pos, &net.opts) else {
        return grid
            .within(pos, p.reach_m())
            .map(|(c, d)| (c, straight(d), d))
            .collect();
    };
    let speed = p.walk.speed_mps;
    let max_walk_m = match p.mode {
        Mode::RoundTrip => p.horizon() * speed / 2.0,
        _ => p.horizon() * speed,
    };
    let limit_cm = ((max_walk_m - src.off_m).max(0.0) * 100.0).floor() as u32;
    aednet_routing::with_scratch(|scratch| {
        let mut search = Search::new(&net.graph, scratch, &src);
        search.settle_within(limit_cm);
        grid.within(pos, p.reach_network_m())
            .filter_map(|(c, d)| {
                let walk_m = match &net.snaps[c as usize] {
                    Some(t) if t.component == src.component => {
                        src.off_m + cost_m(search.cost_if_settled(t)?) + t.off_m
                    }
                    // Off the network or not connected to the AED's part: straight line.
                    _ => return Some((c, straight(d), d)),
                };
                Some((
                    c,
                    p.trip_walking_s(walk_m / speed, indoor, floor, locked),
                    d,
                ))
            })
            .collect()
    })
}
