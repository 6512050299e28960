//! The caller's query re-ranked on Liechtenstein's walking network, in process: k = 1 and 5 for
//! points 50–400 m from an AED (148 AEDs from `liechtenstein.osm.pbf`), against the
//! straight-line query on the same points.
//!
//! `cargo bench -p aednet-geoindex --bench walking`. Goal: k = 5 median ≤ 50 µs.

#[path = "../../routing/tests/common/pbf.rs"]
mod pbf;

use std::hint::black_box;
use std::sync::Arc;

use aednet_core::aed::{Access, ReadinessStatus};
use aednet_core::LatLon;
use aednet_geoindex::{AedDetail, AedEntry, AedIndex, Filters, GeoIndex, Schedules, WalkModel};
use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};

fn bench(c: &mut Criterion) {
    let (extract, extras) = pbf::read_with_extras(&pbf::path());
    let (graph, _) = aednet_routing::build(&extract);
    let mut schedules = Schedules::default();
    let entries: Vec<AedEntry> = extras
        .aeds
        .iter()
        .map(|n| AedEntry {
            id: n.id,
            pos: n.pos,
            access: n
                .tags
                .get("access")
                .and_then(|a| Access::parse(a))
                .unwrap_or(Access::Unknown),
            status: ReadinessStatus::Unknown,
            indoor: None,
            floor: None,
            cabinet_locked: false,
            schedule: schedules.get(None, chrono_tz::Europe::Vaduz, n.pos),
            detail: Arc::new(AedDetail::default()),
        })
        .collect();
    let geo = GeoIndex::default();
    geo.replace_aeds(AedIndex::build(entries.clone()));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let points: Vec<LatLon> = (0..1000)
        .map(|_| {
            let e = &entries[rng.gen_range(0..entries.len())];
            let (d, b) = (
                rng.gen_range(50.0..400.0f64),
                rng.gen_range(0.0..360.0f64).to_radians(),
            );
            LatLon {
                lat: e.pos.lat + d * b.cos() / 111_195.0,
                lon: e.pos.lon + d * b.sin() / (111_195.0 * e.pos.lat.to_radians().cos()),
            }
        })
        .collect();
    let f = Filters::caller_defaults(Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap());
    let walk = WalkModel::default();
    let mut g = c.benchmark_group("liechtenstein_nearest");
    let mut i = 0;
    for k in [1usize, 5] {
        g.bench_function(format!("straight_line_k{k}"), |b| {
            b.iter(|| {
                i = (i + 1) % points.len();
                black_box(geo.nearest_aeds(points[i], k, &f, &walk))
            })
        });
        g.bench_function(format!("network_k{k}"), |b| {
            b.iter(|| {
                i = (i + 1) % points.len();
                black_box(geo.nearest_aeds_walking(points[i], k, &f, &walk, Some(&graph), false))
            })
        });
    }
    g.bench_function("network_k5_with_routes", |b| {
        b.iter(|| {
            i = (i + 1) % points.len();
            black_box(geo.nearest_aeds_walking(points[i], 5, &f, &walk, Some(&graph), true))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
