//! The caller's nearest query in process: k = 1, 5, 10 over 10^4, 10^5 and 10^6 AEDs,
//! unfiltered and filtered (~30 % of AEDs closed at the query time or not ready); bulk build of
//! 10^6; rescuer moves per second.
//!
//! `cargo bench -p aednet-geoindex --bench nearest`. Goal: filtered k = 5 over 10^6 ≤ 10 µs.

use std::hint::black_box;
use std::sync::Arc;

use aednet_core::aed::{Access, ReadinessStatus};
use aednet_core::LatLon;
use aednet_geoindex::{
    AedDetail, AedEntry, AedIndex, Filters, HoursPolicy, ReadinessFilter, RescuerIndex, Schedules,
    WalkModel,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A square region around Quzhou sized for ~25 AEDs per km² at 10^6 (a dense national map
/// squeezed into one province), so k-nearest walks a realistic neighbourhood.
fn region(n: usize) -> (f64, f64, f64) {
    let side_km = (n as f64 / 25.0).sqrt();
    let dlat = side_km / 111.0;
    (28.0, 118.0, dlat)
}

fn random_point(rng: &mut ChaCha8Rng, n: usize) -> LatLon {
    let (lat0, lon0, d) = region(n);
    LatLon {
        lat: lat0 + rng.gen_range(0.0..d),
        lon: lon0 + rng.gen_range(0.0..d / 0.88),
    }
}

/// ~15 % known bad (fault/offline/in use) and ~15 % office hours (closed at 02:00 local).
fn entries(n: usize, seed: u64) -> Vec<AedEntry> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut schedules = Schedules::default();
    let tz = chrono_tz::Asia::Shanghai;
    let anchor = LatLon::new(28.97, 118.87).unwrap();
    let office = schedules.get(Some("Mo-Fr 08:00-18:00"), tz, anchor);
    let always = schedules.get(Some("24/7"), tz, anchor);
    let unknown = schedules.get(None, tz, anchor);
    (0..n)
        .map(|i| {
            let r: f64 = rng.gen();
            let status = if r < 0.05 {
                ReadinessStatus::Fault
            } else if r < 0.10 {
                ReadinessStatus::Offline
            } else if r < 0.15 {
                ReadinessStatus::InUse
            } else if r < 0.5 {
                ReadinessStatus::Ready
            } else {
                ReadinessStatus::Unknown
            };
            let h: f64 = rng.gen();
            let schedule = if h < 0.15 {
                office.clone()
            } else if h < 0.6 {
                always.clone()
            } else {
                unknown.clone()
            };
            AedEntry {
                id: i as i64,
                pos: random_point(&mut rng, n),
                access: if rng.gen_bool(0.9) {
                    Access::Yes
                } else {
                    Access::Customers
                },
                status,
                indoor: Some(rng.gen_bool(0.6)),
                floor: rng.gen_bool(0.3).then(|| f64::from(rng.gen_range(-1..5))),
                cabinet_locked: rng.gen_bool(0.2),
                schedule,
                detail: Arc::new(AedDetail::default()),
            }
        })
        .collect()
}

fn night() -> DateTime<Utc> {
    // Wednesday 02:00 in Asia/Shanghai.
    Utc.with_ymd_and_hms(2026, 11, 24, 18, 0, 0).unwrap()
}

fn bench_nearest(c: &mut Criterion) {
    let walk = WalkModel::default();
    let unfiltered = Filters {
        open_at: night(),
        readiness: ReadinessFilter::Any,
        include_restricted: true,
        hours: HoursPolicy::Any,
        indoor: None,
        max_distance_m: None,
    };
    let filtered = Filters {
        include_restricted: true,
        hours: HoursPolicy::OpenOrUnknown,
        readiness: ReadinessFilter::NotKnownBad,
        ..unfiltered.clone()
    };
    let mut g = c.benchmark_group("nearest");
    g.measurement_time(std::time::Duration::from_secs(3));
    g.warm_up_time(std::time::Duration::from_secs(1));
    for n in [10_000usize, 100_000, 1_000_000] {
        let index = AedIndex::build(entries(n, 7));
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let queries: Vec<LatLon> = (0..4096).map(|_| random_point(&mut rng, n)).collect();
        for k in [1usize, 5, 10] {
            for (label, f) in [("unfiltered", &unfiltered), ("filtered", &filtered)] {
                let mut i = 0usize;
                g.bench_function(BenchmarkId::new(format!("{label} k={k}"), n), |b| {
                    b.iter(|| {
                        i = (i + 1) % queries.len();
                        black_box(index.nearest(queries[i], k, f, &walk))
                    });
                });
            }
        }
    }
    g.finish();
}

fn bench_build(c: &mut Criterion) {
    let mut g = c.benchmark_group("build");
    g.sample_size(10);
    let n = 1_000_000;
    let base = entries(n, 7);
    g.bench_function("bulk build 10^6", |b| {
        b.iter_batched(
            || base.clone(),
            |e| black_box(AedIndex::build(e)),
            criterion::BatchSize::LargeInput,
        );
    });
    g.finish();
}

fn bench_rescuers(c: &mut Criterion) {
    let mut g = c.benchmark_group("rescuers");
    let n = 100_000;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let t0 = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
    let mut idx = RescuerIndex::new(Duration::minutes(15));
    let mut pos: Vec<LatLon> = (0..n).map(|_| random_point(&mut rng, 1_000_000)).collect();
    for (i, p) in pos.iter().enumerate() {
        idx.upsert(i as i64, *p, t0);
    }
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    let mut t = t0;
    g.bench_function("move one of 10^5", |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            t += Duration::milliseconds(1);
            // A few metres per report, as a walking rescuer's phone sends.
            pos[i].lat += 0.00003;
            black_box(idx.upsert(i as i64, pos[i], t))
        });
    });
    g.finish();
}

criterion_group!(benches, bench_nearest, bench_build, bench_rescuers);
criterion_main!(benches);
