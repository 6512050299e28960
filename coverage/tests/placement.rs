//! Greedy maximal covering against the exact optimum (exhaustive search) on small random
//! instances: never below (1 − 1/e) of the optimum; the mean ratio observed is printed
//! (`cargo test -p aednet-coverage --test placement -- --nocapture`). Plus the planner on a
//! real map: before ≤ after, gains add up, relocation only when it is a net gain.

use std::sync::Arc;

use aednet_core::aed::{Access, ReadinessStatus};
use aednet_core::LatLon;
use aednet_coverage::{
    exhaustive_max_cover, greedy_max_cover, plan, Candidate, CoverageMap, DistrictArea, Grid,
    Params, PlanRequest,
};
use aednet_geoindex::{AedDetail, AedEntry, Schedules};
use chrono::{TimeZone, Utc};
use geo::{polygon, MultiPolygon};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn greedy_is_within_1_minus_1_over_e_of_the_optimum() {
    let bound = 1.0 - (-1.0f64).exp();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (mut sum, mut n, mut worst, mut exact) = (0.0, 0usize, 1.0f64, 0usize);
    for round in 0..400 {
        let elements = rng.gen_range(10..40);
        let nsets = rng.gen_range(4..14);
        let k = rng.gen_range(1..=4.min(nsets));
        let weights: Vec<f64> = (0..elements)
            .map(|_| {
                if rng.gen_bool(0.2) {
                    0.0
                } else {
                    rng.gen_range(1.0..500.0f64).round()
                }
            })
            .collect();
        // Half the instances geometric (overlapping discs on a line, as AED catchments are),
        // half arbitrary sets.
        let sets: Vec<Vec<u32>> = (0..nsets)
            .map(|_| {
                if round % 2 == 0 {
                    let c = rng.gen_range(0..elements) as i64;
                    let r = rng.gen_range(1..6);
                    ((c - r).max(0)..=(c + r).min(elements as i64 - 1))
                        .map(|e| e as u32)
                        .collect()
                } else {
                    (0..elements as u32)
                        .filter(|_| rng.gen_bool(0.25))
                        .collect()
                }
            })
            .collect();
        let already: Vec<bool> = (0..elements).map(|_| rng.gen_bool(0.15)).collect();
        let mut covered = already.clone();
        let picked = greedy_max_cover(&weights, &sets, &mut covered, k);
        let greedy: f64 = picked.iter().map(|(_, g)| g).sum();
        // The reported gains are the real marginal gains.
        let direct: f64 = (0..elements)
            .filter(|&e| covered[e] && !already[e])
            .map(|e| weights[e])
            .sum();
        assert!((greedy - direct).abs() < 1e-9);
        let (_, opt) = exhaustive_max_cover(&weights, &sets, &already, k);
        assert!(
            greedy <= opt + 1e-9,
            "greedy {greedy} beats the optimum {opt}?"
        );
        if opt > 0.0 {
            let ratio = greedy / opt;
            assert!(
                ratio >= bound - 1e-12,
                "round {round}: greedy {greedy} < (1-1/e) × {opt}"
            );
            sum += ratio;
            n += 1;
            worst = worst.min(ratio);
            if (ratio - 1.0).abs() < 1e-12 {
                exact += 1;
            }
        }
    }
    println!(
        "greedy / optimum over {n} instances: mean {:.4}, worst {:.4}, optimal in {exact} ({:.1} %)",
        sum / n as f64,
        worst,
        100.0 * exact as f64 / n as f64
    );
}

#[test]
fn lazy_greedy_equals_plain_greedy() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for _ in 0..200 {
        let elements = rng.gen_range(5..60);
        let weights: Vec<f64> = (0..elements)
            .map(|_| rng.gen_range(0.0..10.0f64).round())
            .collect();
        let sets: Vec<Vec<u32>> = (0..rng.gen_range(1..30))
            .map(|_| (0..elements as u32).filter(|_| rng.gen_bool(0.2)).collect())
            .collect();
        let k = rng.gen_range(0..8);
        let mut covered = vec![false; elements];
        let lazy = greedy_max_cover(&weights, &sets, &mut covered, k);
        // Plain greedy: re-evaluate everything each round, ties to the lower index.
        let mut c2 = vec![false; elements];
        let mut plain = Vec::new();
        for _ in 0..k {
            let best = sets
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let g: f64 = s
                        .iter()
                        .filter(|&&e| !c2[e as usize])
                        .map(|&e| weights[e as usize])
                        .sum();
                    (g, i)
                })
                .fold(None::<(f64, usize)>, |b, x| match b {
                    Some(b) if b.0 >= x.0 => Some(b),
                    _ => Some(x),
                });
            match best {
                Some((g, i)) if g > 0.0 => {
                    for &e in &sets[i] {
                        c2[e as usize] = true;
                    }
                    plain.push((i, g));
                }
                _ => break,
            }
        }
        assert_eq!(lazy, plain);
    }
}

fn square_grid() -> Arc<Grid> {
    let (x, y) = (9.50, 47.13);
    let area = MultiPolygon::new(vec![polygon![
        (x: x, y: y), (x: x + 0.02, y: y), (x: x + 0.02, y: y + 0.015), (x: x, y: y + 0.015), (x: x, y: y)
    ]]);
    Arc::new(
        Grid::for_districts(
            &[DistrictArea {
                id: 1,
                population: Some(3000.0),
                area,
            }],
            aednet_coverage::resolution(9).unwrap(),
            &[],
        )
        .unwrap(),
    )
}

#[test]
fn plan_adds_relocates_and_suggests_24_7() {
    let grid = square_grid();
    let mut schedules = Schedules::default();
    let tz: chrono_tz::Tz = "Europe/Vaduz".parse().unwrap();
    let mk = |id: i64, lat: f64, lon: f64, hours: &str, s: &mut Schedules| {
        let pos = LatLon::new(lat, lon).unwrap();
        AedEntry {
            id,
            pos,
            access: Access::Yes,
            status: ReadinessStatus::Ready,
            indoor: Some(false),
            floor: None,
            cabinet_locked: false,
            schedule: s.get(Some(hours), tz, pos),
            detail: Arc::new(AedDetail {
                name: Some(format!("aed {id}")),
                ..Default::default()
            }),
        }
    };
    // Two office-hours AEDs side by side (one is redundant in the day), one 24/7 far away.
    let c = grid.cells[grid.len() / 2].center;
    let entries = vec![
        mk(1, c.lat, c.lon, "Mo-Fr 08:00-18:00", &mut schedules),
        mk(
            2,
            c.lat,
            c.lon + 0.0002,
            "Mo-Fr 08:00-18:00",
            &mut schedules,
        ),
        mk(3, 47.1305, 9.5005, "24/7", &mut schedules),
    ];
    // Wednesday 11:00 local: all open.
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
    let map = CoverageMap::build(grid.clone(), Params::default(), entries, at);
    let p = plan(
        &map,
        &PlanRequest {
            add: 5,
            relocate: 1,
            suggest_24_7: 3,
            tz: Some(tz),
            ..Default::default()
        },
    );
    assert_eq!(p.sites.len(), 5);
    assert_eq!(p.candidates, grid.len());
    let gained: f64 = p.sites.iter().map(|s| s.gain_population).sum::<f64>()
        + p.relocations.iter().map(|r| r.gain_population).sum::<f64>();
    assert!(
        (p.after.covered_population - p.before.covered_population - gained).abs() < 1e-6,
        "{p:?}"
    );
    assert!(p.after.share > p.before.share);
    for w in p.sites.windows(2) {
        assert!(w[0].gain_population >= w[1].gain_population);
    }
    // The redundant twin is the cheapest to move, and moving it gains.
    assert_eq!(p.relocations.len(), 1, "{p:?}");
    assert!([1, 2].contains(&p.relocations[0].aed_id));
    assert!(p.relocations[0].gain_population > 0.0);
    // The office-hours AEDs are the ones worth converting; the 24/7 one never is.
    assert!(!p.conversions_24_7.is_empty());
    assert!(p
        .conversions_24_7
        .iter()
        .all(|c| c.aed_id != 3 && c.gain > 0.0 && c.night_gain > 0.0));

    // Given candidates: only those are used.
    let cands = vec![Candidate {
        pos: LatLon::new(47.138, 9.515).unwrap(),
        name: Some("school".into()),
    }];
    let p2 = plan(
        &map,
        &PlanRequest {
            add: 3,
            candidates: Some(cands),
            ..Default::default()
        },
    );
    assert_eq!(p2.sites.len(), 1);
    assert_eq!(p2.sites[0].name.as_deref(), Some("school"));
}

#[test]
fn the_inverse_plan_adds_the_fewest_aeds_that_reach_the_share() {
    let grid = square_grid();
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
    let map = CoverageMap::build(grid.clone(), Params::default(), Vec::new(), at);
    let req = PlanRequest {
        add: 200,
        ..Default::default()
    };
    let model = aednet_coverage::RescuerModel::default();
    let full = plan(&map, &req);
    assert!(full.after.share > 0.99, "{:?}", full.after);
    for target in [0.25, 0.5, 0.9] {
        let t = aednet_coverage::plan_for_share(&map, &req, target, &model);
        assert!(t.reached);
        assert!(t.after.share >= target - 1e-9, "{target}: {:?}", t.after);
        // The fewest: one AED fewer stays below the share (the greedy order's prefix).
        let less: f64 = full.sites[..t.aeds_to_add - 1]
            .iter()
            .map(|s| s.gain_population)
            .sum();
        assert!(less / full.before.population < target, "{target}");
        assert_eq!(t.sites, full.sites[..t.aeds_to_add].to_vec());
        // Rescuers: Poisson, λ = ρ · accept · π r² = ln 10 for 90 %.
        let r = t.rescuers.expect("people live here");
        let lambda =
            r.on_duty_per_km2 * model.accept * std::f64::consts::PI * (r.reach_m / 1000.0).powi(2);
        assert!((lambda - 10f64.ln()).abs() < 1e-9);
        // (240 − 60) s × 2.3 m/s / (2 × 1.2) = 172.5 m
        assert!((r.reach_m - 172.5).abs() < 1e-9);
        assert!((r.registered - r.on_duty / model.on_duty).abs() < 1e-6);
    }
    // More than the plan may add: not reached, all it could.
    let few = PlanRequest { add: 1, ..req };
    let t = aednet_coverage::plan_for_share(&map, &few, 0.99, &model);
    assert!(!t.reached);
    assert_eq!(t.aeds_to_add, 1);
}
