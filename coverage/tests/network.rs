//! Coverage on the walking network against brute force: every cell's best time equals the
//! minimum over every AED of its trip measured with a full search (or the straight-line model
//! where the cell or the AED is off the network or on another part of it).

use std::sync::Arc;

use aednet_core::aed::{Access, ReadinessStatus};
use aednet_core::LatLon;
use aednet_coverage::{CellNetwork, CoverageMap, DistrictArea, Grid, Params};
use aednet_geoindex::{AedDetail, AedEntry, Schedules, WalkKind};
use aednet_routing::{cost_m, Edge, Graph};
use chrono::{TimeZone, Utc};
use geo::{polygon, MultiPolygon};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

const LAT0: f64 = 47.14;
const LON0: f64 = 9.51;

fn grid() -> Arc<Grid> {
    let (dx, dy) = (0.012, 0.008);
    let area = MultiPolygon::new(vec![polygon![
        (x: LON0, y: LAT0), (x: LON0 + dx, y: LAT0), (x: LON0 + dx, y: LAT0 + dy), (x: LON0, y: LAT0 + dy), (x: LON0, y: LAT0)
    ]]);
    Arc::new(
        Grid::for_districts(
            &[DistrictArea {
                id: 1,
                population: Some(1000.0),
                area,
            }],
            aednet_coverage::resolution(10).unwrap(),
            &[],
        )
        .unwrap(),
    )
}

/// A street grid over the area with missing blocks and a cut-off part.
fn streets(seed: u64) -> Graph {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (rows, cols) = (rng.gen_range(3..9u32), rng.gen_range(3..12u32));
    let mut coords = Vec::new();
    for i in 0..rows {
        for j in 0..cols {
            let lat = LAT0 + 0.008 * f64::from(i) / f64::from(rows - 1);
            let lon = LON0 + 0.012 * f64::from(j) / f64::from(cols - 1);
            coords.push(((lat * 1e7).round() as i32, (lon * 1e7).round() as i32));
        }
    }
    let pos = |v: u32| LatLon {
        lat: f64::from(coords[v as usize].0) / 1e7,
        lon: f64::from(coords[v as usize].1) / 1e7,
    };
    let mut edges = Vec::new();
    for i in 0..rows {
        for j in 0..cols {
            for (ni, nj) in [(i + 1, j), (i, j + 1)] {
                if ni >= rows || nj >= cols || rng.gen_bool(0.25) {
                    continue;
                }
                let (a, b) = (i * cols + j, ni * cols + nj);
                let f = if rng.gen_bool(0.1) { 2.4 } else { 1.0 };
                edges.push(Edge {
                    a,
                    b,
                    cost_cm: (pos(a).distance_m(&pos(b)) * f * 100.0).ceil() as u32,
                });
            }
        }
    }
    Graph::from_parts(coords, edges)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn network_map_equals_brute_force(seed in any::<u64>(), n in 1usize..8) {
        let grid = grid();
        let graph = Arc::new(streets(seed));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 7);
        let mut schedules = Schedules::default();
        let entries: Vec<AedEntry> = (0..n)
            .map(|i| {
                let pos = LatLon { lat: LAT0 + rng.gen_range(0.0..0.008), lon: LON0 + rng.gen_range(0.0..0.012) };
                AedEntry {
                    id: i as i64,
                    pos,
                    access: Access::Yes,
                    status: ReadinessStatus::Ready,
                    indoor: None,
                    floor: [None, Some(2.0)][i % 2],
                    cabinet_locked: i % 3 == 0,
                    schedule: schedules.get(Some("24/7"), chrono_tz::UTC, pos),
                    detail: Arc::new(AedDetail::default()),
                }
            })
            .collect();
        let params = Params::default();
        prop_assert_eq!(params.walk_on, WalkKind::Network);
        let net = Arc::new(CellNetwork::new(graph.clone(), &grid, &params.walk));
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let map = CoverageMap::build_on(grid.clone(), params, entries.clone(), at, Some(net));
        prop_assert_eq!(map.walk_used(), WalkKind::Network);
        let opts = aednet_geoindex::network::snap_options(&params.walk);
        let w = &params.walk;
        for (ci, cell) in grid.cells.iter().enumerate() {
            let mut best = f64::INFINITY;
            for e in &entries {
                let d = cell.center.distance_m(&e.pos);
                let walk_s = match (graph.snap(e.pos, &opts), graph.snap(cell.center, &opts)) {
                    (Some(s), Some(t)) => match graph.route(&s, &t) {
                        Some(r) => Some((s.off_m + cost_m(r.cost_cm) + t.off_m) / w.speed_mps),
                        None => None,
                    },
                    _ => None,
                };
                let t = match walk_s {
                    Some(ws) => params.trip_walking_s(ws, e.indoor, e.floor, e.cabinet_locked),
                    None => params.trip_s(d, e.indoor, e.floor, e.cabinet_locked),
                };
                best = best.min(t);
            }
            let want = (best <= params.horizon()).then_some(best);
            let got = map.time_s(ci as u32);
            match (got, want) {
                (Some(g), Some(b)) => prop_assert!((g - b).abs() < 0.06, "cell {ci}: {g} vs {b}"),
                (None, None) => {}
                // Times are shown to 0.1 s: at the horizon's edge one side may round out.
                (g, b) => prop_assert!(
                    g.or(b).is_some_and(|x| (x - params.horizon()).abs() < 0.06),
                    "cell {ci}: {g:?} vs {b:?}"
                ),
            }
        }
    }
}
