//! The three coverage goals on a synthetic city of ~10^4 res-9 cells (a 32 km square, ~1 050
//! km²) and 10^4 AEDs (15 % office hours, 10 % faulty):
//! - full recompute (every AED's hours and every cell) < 50 ms; also the first build with
//!   geometry (links from every AED to the cells it reaches);
//! - one AED's readiness change → its cells recomputed < 1 ms;
//! - placement of 50 sites over 10^4 candidates (every cell centre) < 1 s.
//!
//! `cargo bench -p aednet-coverage --bench coverage`

use std::hint::black_box;
use std::sync::Arc;

use aednet_core::aed::{Access, ReadinessStatus};
use aednet_core::LatLon;
use aednet_coverage::{plan, CoverageMap, DistrictArea, Grid, Params, PlanRequest};
use aednet_geoindex::{AedDetail, AedEntry, Schedules};
use chrono::{Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use geo::{polygon, MultiPolygon};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const LAT0: f64 = 28.8;
const LON0: f64 = 118.7;
const SIDE_DEG: f64 = 0.292; // ~32 km

fn city(aeds: usize) -> (Arc<Grid>, Vec<AedEntry>) {
    let dlon = SIDE_DEG / LAT0.to_radians().cos();
    let area = MultiPolygon::new(vec![polygon![
        (x: LON0, y: LAT0), (x: LON0 + dlon, y: LAT0), (x: LON0 + dlon, y: LAT0 + SIDE_DEG),
        (x: LON0, y: LAT0 + SIDE_DEG), (x: LON0, y: LAT0)
    ]]);
    let grid = Grid::for_districts(
        &[DistrictArea {
            id: 1,
            population: Some(800_000.0),
            area,
        }],
        aednet_coverage::resolution(9).unwrap(),
        &[],
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut schedules = Schedules::default();
    let tz: chrono_tz::Tz = "Asia/Shanghai".parse().unwrap();
    let entries = (0..aeds)
        .map(|i| {
            let pos = LatLon {
                lat: LAT0 + rng.gen_range(0.0..SIDE_DEG),
                lon: LON0 + rng.gen_range(0.0..dlon),
            };
            let hours = if rng.gen_bool(0.15) {
                Some("Mo-Fr 08:00-18:00")
            } else {
                Some("24/7")
            };
            AedEntry {
                id: i as i64 + 1,
                pos,
                access: Access::Yes,
                status: if rng.gen_bool(0.1) {
                    ReadinessStatus::Fault
                } else {
                    ReadinessStatus::Ready
                },
                indoor: Some(rng.gen_bool(0.5)),
                floor: None,
                cabinet_locked: rng.gen_bool(0.2),
                schedule: schedules.get(hours, tz, pos),
                detail: Arc::new(AedDetail::default()),
            }
        })
        .collect();
    (Arc::new(grid), entries)
}

fn benches(c: &mut Criterion) {
    let (grid, entries) = city(10_000);
    let t = Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap();
    let mut map = CoverageMap::build(grid.clone(), Params::default(), entries.clone(), t);
    let s = map.summary(|_| true);
    println!(
        "city: {} cells, {} AEDs, {:.1} % of people covered (round trip 240 s)",
        grid.len(),
        map.aed_count(),
        s.share * 100.0
    );
    let mut g = c.benchmark_group("coverage");
    g.sample_size(20);
    g.bench_function("full_recompute_1e4_cells_1e4_aeds", |b| {
        let mut k = 0;
        b.iter(|| {
            // Alternate day and night so hours really change.
            k += 1;
            map.refresh(t + Duration::hours(if k % 2 == 0 { 0 } else { 8 }));
            black_box(map.covered(0))
        })
    });
    g.bench_function("build_with_geometry_1e4_cells_1e4_aeds", |b| {
        b.iter(|| {
            black_box(CoverageMap::build(
                grid.clone(),
                Params::default(),
                entries.clone(),
                t,
            ))
        })
    });
    g.sample_size(100);
    g.bench_function("one_aed_readiness_change", |b| {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        b.iter(|| {
            let id = rng.gen_range(1..=10_000i64);
            let status = if map.is_active(id) {
                ReadinessStatus::Fault
            } else {
                ReadinessStatus::Ready
            };
            black_box(map.set_status(id, status))
        })
    });
    g.sample_size(10);
    map.refresh(t);
    g.bench_function("placement_50_sites_over_1e4_candidates", |b| {
        b.iter(|| {
            black_box(plan(
                &map,
                &PlanRequest {
                    add: 50,
                    ..Default::default()
                },
            ))
        })
    });
    g.finish();
}

criterion_group!(coverage, benches);
criterion_main!(coverage);
