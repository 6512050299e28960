//! The caller's query re-ranked on the walking network against brute force: every AED's walk
//! measured with a full search, every AED evaluated, sorted, the first k taken. Random street
//! grids with missing blocks (barriers), slow stairs, a cut-off quarter, AEDs off the network,
//! and every filter.

use std::sync::Arc;

use aednet_core::aed::{Access, ReadinessStatus};
use aednet_core::LatLon;
use aednet_geoindex::{
    evaluate, evaluate_leg, rank, AedDetail, AedEntry, AedIndex, Filters, GeoIndex, HoursPolicy,
    Leg, QueryWalk, ReadinessFilter, Schedules, WalkKind, WalkModel,
};
use aednet_routing::{cost_m, Edge, Graph};
use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

const LAT0: f64 = 28.96;
const LON0: f64 = 118.86;

/// A street grid of `side`² junctions ~`step` m apart; some blocks missing, some stairs, and a
/// quarter cut off from the rest (a river without a bridge).
fn grid(seed: u64) -> Graph {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let side = rng.gen_range(3..10u32);
    let step = rng.gen_range(40.0..150.0f64);
    let dlat = step / 111_195.0;
    let dlon = dlat / LAT0.to_radians().cos();
    let mut coords = Vec::new();
    for i in 0..side {
        for j in 0..side {
            let jitter = |r: &mut rand_chacha::ChaCha8Rng| r.gen_range(-0.2..0.2);
            let lat = LAT0 + (f64::from(i) + jitter(&mut rng)) * dlat;
            let lon = LON0 + (f64::from(j) + jitter(&mut rng)) * dlon;
            coords.push(((lat * 1e7).round() as i32, (lon * 1e7).round() as i32));
        }
    }
    let pos = |v: u32| LatLon {
        lat: f64::from(coords[v as usize].0) / 1e7,
        lon: f64::from(coords[v as usize].1) / 1e7,
    };
    let river = rng.gen_range(1..side);
    let mut edges = Vec::new();
    for i in 0..side {
        for j in 0..side {
            let v = i * side + j;
            for (di, dj) in [(0, 1), (1, 0)] {
                let (ni, nj) = (i + di, j + dj);
                if ni >= side || nj >= side || rng.gen_bool(0.2) {
                    continue;
                }
                // No way across the river between rows river-1 and river, often.
                if di == 1 && ni == river && rng.gen_bool(0.9) {
                    continue;
                }
                let w = ni * side + nj;
                let factor = if rng.gen_bool(0.1) { 2.4 } else { 1.0 };
                let len = pos(v).distance_m(&pos(w));
                edges.push(Edge {
                    a: v,
                    b: w,
                    cost_cm: (len * factor * 100.0).ceil() as u32,
                });
            }
        }
    }
    Graph::from_parts(coords, edges)
}

fn entry(id: i64, pos: LatLon, code: u16, schedules: &mut Schedules) -> AedEntry {
    const HOURS: &[Option<&str>] = &[Some("24/7"), Some("Mo-Fr 08:00-17:00"), None];
    AedEntry {
        id,
        pos,
        access: Access::ALL[usize::from(code) % Access::ALL.len()],
        status: ReadinessStatus::ALL[usize::from(code / 7) % ReadinessStatus::ALL.len()],
        indoor: [None, Some(true), Some(false)][usize::from(code / 11) % 3],
        floor: [None, Some(0.0), Some(3.0), Some(-1.0)][usize::from(code / 5) % 4],
        cabinet_locked: code.is_multiple_of(13),
        schedule: schedules.get(
            HOURS[usize::from(code / 3) % HOURS.len()],
            chrono_tz::UTC,
            pos,
        ),
        detail: Arc::new(AedDetail::default()),
    }
}

/// Every AED with its walk measured by a full search: the reference.
fn brute(
    g: &Graph,
    entries: &[AedEntry],
    at: LatLon,
    k: usize,
    f: &Filters,
    w: &WalkModel,
) -> Vec<aednet_geoindex::Nearest> {
    let opts = aednet_geoindex::network::snap_options(w);
    let source = g.snap(at, &opts).expect("caller on the network");
    let mut all: Vec<_> = entries
        .iter()
        .filter(|e| f.max_distance_m.is_none_or(|m| at.distance_m(&e.pos) <= m))
        .filter_map(|e| {
            let d = at.distance_m(&e.pos);
            evaluate(e, at, d, f, w)?;
            let leg = match g.snap(e.pos, &opts) {
                Some(t) => match g.route(&source, &t) {
                    Some(r) => {
                        let walk_m = source.off_m + cost_m(r.cost_cm) + t.off_m;
                        Leg::Network {
                            walk_s: walk_m / w.speed_mps,
                            walk_m,
                        }
                    }
                    None => Leg::StraightLine,
                },
                None => Leg::StraightLine,
            };
            evaluate_leg(e, at, d, f, w, leg)
        })
        .collect();
    all.sort_by_key(rank);
    all.truncate(k);
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn reranked_nearest_equals_brute_force(
        seed in any::<u64>(),
        n in 1usize..40,
        k in 1usize..6,
        r in 0u8..3,
        restricted in any::<bool>(),
        hours in 0u8..3,
        minute in 0i64..(7 * 24 * 60),
        max_m in prop::option::of(50.0..3000.0f64),
        snap_m in prop::sample::select(vec![30.0, 300.0]),
    ) {
        let g = grid(seed);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
        let mut schedules = Schedules::default();
        let spread = || 0.012;
        let random_point = |rng: &mut rand_chacha::ChaCha8Rng| LatLon {
            lat: LAT0 + rng.gen_range(-0.002..spread()),
            lon: LON0 + rng.gen_range(-0.002..spread()),
        };
        let entries: Vec<AedEntry> = (0..n)
            .map(|i| {
                let p = random_point(&mut rng);
                entry(i as i64, p, rng.gen(), &mut schedules)
            })
            .collect();
        let geo = GeoIndex::default();
        geo.replace_aeds(AedIndex::build(entries.clone()));
        let w = WalkModel { max_snap_m: snap_m, ..WalkModel::default() };
        let f = Filters {
            open_at: Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap() + Duration::minutes(minute),
            readiness: [ReadinessFilter::NotKnownBad, ReadinessFilter::ReadyOrDegraded, ReadinessFilter::Any][usize::from(r)],
            include_restricted: restricted,
            hours: [HoursPolicy::OpenOrUnknown, HoursPolicy::OpenOnly, HoursPolicy::Any][usize::from(hours)],
            indoor: None,
            max_distance_m: max_m,
        };
        let at = random_point(&mut rng);
        let got = geo.nearest_aeds_walking(at, k, &f, &w, Some(&g), true);
        let opts = aednet_geoindex::network::snap_options(&w);
        if g.snap(at, &opts).is_none() {
            prop_assert_eq!(got.walk, QueryWalk::OffNetwork);
            prop_assert!(got.results.iter().all(|n| n.walk == WalkKind::StraightLine));
            return Ok(());
        }
        let want = brute(&g, &entries, at, k, &f, &w);
        prop_assert_eq!(got.results.len(), want.len());
        for (a, b) in got.results.iter().zip(&want) {
            prop_assert!((a.round_trip_s - b.round_trip_s).abs() < 1e-3, "{} vs {}", a.round_trip_s, b.round_trip_s);
            prop_assert!((a.walk_m - b.walk_m).abs() < 1e-3 || a.walk != b.walk);
            // Routes start at the caller and end at the AED.
            let route = a.route.as_ref().unwrap();
            prop_assert_eq!(route.coordinates.first(), Some(&[at.lon, at.lat]));
            prop_assert_eq!(route.coordinates.last(), Some(&[a.lon, a.lat]));
        }
        if want.windows(2).all(|x| x[1].round_trip_s - x[0].round_trip_s > 1e-3) {
            let ids: Vec<i64> = got.results.iter().map(|n| n.id).collect();
            let want_ids: Vec<i64> = want.iter().map(|n| n.id).collect();
            prop_assert_eq!(ids, want_ids);
            let kinds: Vec<WalkKind> = got.results.iter().map(|n| n.walk).collect();
            let want_kinds: Vec<WalkKind> = want.iter().map(|n| n.walk).collect();
            prop_assert_eq!(kinds, want_kinds);
        }
        // Without a network: the straight-line answer, and it says so.
        let plain = geo.nearest_aeds_walking(at, k, &f, &w, None, false);
        prop_assert_eq!(plain.walk, QueryWalk::NoNetwork);
        prop_assert_eq!(plain.results, geo.nearest_aeds(at, k, &f, &w));
    }
}
