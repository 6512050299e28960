//! The plan's walking times on the network against exact walks: whatever the searches leave
//! out (each AED's search stops at what is left of the budget after its walk to the patient),
//! every rescuer → AED → patient fetch is within the budget exactly when the exact walks say
//! so, and then at the same time.

use aednet_core::LatLon;
use aednet_dispatch::travel::{walk_leg, NetworkTravel};
use aednet_dispatch::{AedOption, Candidate, Policy};
use aednet_routing::{Edge, Graph, SnapOptions};
use proptest::prelude::*;

const LAT0: f64 = 47.14;
const LON0: f64 = 9.52;
/// Grid spacing in degrees of latitude (~55 m).
const STEP: f64 = 0.0005;
const N: usize = 24;

/// An N × N street grid with some streets missing (detours, dead ends, cut-off parts).
fn grid(missing: &[bool]) -> Graph {
    let lon_step = STEP / LAT0.to_radians().cos();
    let mut coords = Vec::new();
    for y in 0..N {
        for x in 0..N {
            let lat = LAT0 + y as f64 * STEP;
            let lon = LON0 + x as f64 * lon_step;
            coords.push(((lat * 1e7).round() as i32, (lon * 1e7).round() as i32));
        }
    }
    let pos = |v: usize| LatLon {
        lat: f64::from(coords[v].0) / 1e7,
        lon: f64::from(coords[v].1) / 1e7,
    };
    let mut edges = Vec::new();
    let mut k = 0;
    for y in 0..N {
        for x in 0..N {
            let v = y * N + x;
            for w in [(x + 1 < N).then_some(v + 1), (y + 1 < N).then_some(v + N)]
                .into_iter()
                .flatten()
            {
                k += 1;
                if missing[k % missing.len()] {
                    continue;
                }
                let cost_cm = (pos(v).distance_m(&pos(w)) * 100.0).round() as u32;
                edges.push(Edge {
                    a: v as u32,
                    b: w as u32,
                    cost_cm,
                });
            }
        }
    }
    Graph::from_parts(coords, edges)
}

fn place() -> impl Strategy<Value = LatLon> {
    let span = STEP * (N - 1) as f64;
    (0.0..span, 0.0..span).prop_map(|(dy, dx)| LatLon {
        lat: LAT0 + dy,
        lon: LON0 + dx / LAT0.to_radians().cos(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn fetches_within_the_budget_are_timed_exactly(
        missing in prop::collection::vec(prop::bool::weighted(0.25), 7..41),
        patient in place(),
        rescuers in prop::collection::vec(place(), 1..25),
        aeds in prop::collection::vec((place(), 0.0..60.0f64), 1..10),
        budget in 60.0..900.0f64,
    ) {
        let g = grid(&missing);
        let opts = SnapOptions::default();
        let p = Policy {
            fetch_budget_s: budget,
            ..Policy::default()
        };
        let candidates: Vec<Candidate> = rescuers
            .iter()
            .enumerate()
            .map(|(i, pos)| Candidate { rescuer_id: i as i64, pos: *pos, accept: None })
            .collect();
        let options: Vec<AedOption> = aeds
            .iter()
            .enumerate()
            .map(|(i, (pos, h))| AedOption { aed_id: i as i64, pos: *pos, handling_s: *h })
            .collect();
        let travel = NetworkTravel::new(&g, &opts, &p, patient, &candidates, &options);
        let exact = |a: LatLon, b: LatLon| walk_leg(&g, &opts, a, b, p.detour_factor).0 / p.rescuer_speed_mps;
        for r in &candidates {
            for a in &options {
                let net = travel.travel_s(r.pos, a.pos) + a.handling_s + travel.travel_s(a.pos, patient);
                let true_s = exact(r.pos, a.pos) + a.handling_s + exact(a.pos, patient);
                // Snapping and centimetre costs round a little; a fetch within a second of
                // the budget may fall either way.
                if (true_s - budget).abs() < 1.0 {
                    continue;
                }
                prop_assert_eq!(net <= budget, true_s <= budget, "net {} exact {} budget {}", net, true_s, budget);
                if true_s <= budget {
                    prop_assert!((net - true_s).abs() < 0.5, "net {} exact {}", net, true_s);
                }
            }
        }
    }
}
