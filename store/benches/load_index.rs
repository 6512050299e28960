//! Start-up cost of the in-memory indexes: loading 10^6 AEDs from a SQLite file
//! (`Store::load_aed_index`). Budget: < 2 s on the 2-core reference machine.
//!
//! `cargo bench -p aednet-store --bench load_index`. The file is built once, outside the timed
//! part, with `insert_aeds_bulk`; that insert is timed once and printed too.

use std::time::{Duration, Instant};

use aednet_core::aed::{Access, AedData, AedInput, ReadinessStatus};
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};

const N: usize = 1_000_000;
const HOURS: &[&str] = &[
    "24/7",
    "Mo-Fr 08:00-17:30; PH off",
    "Mo-Su 10:00-22:00",
    "Mo-Su 05:30-23:00",
];

fn synthetic(n: usize) -> Vec<AedData> {
    let now = Utc::now();
    // A deterministic spread over eastern China; hours, access and status vary like real data.
    let template = AedInput {
        lat: 29.0,
        lon: 119.0,
        name: Some("AED".into()),
        time_zone: Some(chrono_tz::Asia::Shanghai),
        ..Default::default()
    }
    .validate(now)
    .unwrap();
    (0..n)
        .map(|i| {
            let mut d = template.clone();
            let f = i as f64;
            d.location.lat = 22.0 + (f * 0.618_033_988_75).fract() * 18.0;
            d.location.lon = 105.0 + (f * 0.414_213_562_37).fract() * 17.0;
            d.opening_hours = Some(HOURS[i % HOURS.len()].to_string());
            d.opening_hours_valid = true;
            d.access = if i % 10 == 0 {
                Access::Customers
            } else {
                Access::Yes
            };
            d.readiness.status = if i % 7 == 0 {
                ReadinessStatus::Ready
            } else {
                ReadinessStatus::Unknown
            };
            d.indoor = Some(i % 3 == 0);
            d
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = rt.block_on(aednet_store::connect(&url)).unwrap();
    let data = synthetic(N);
    let t = Instant::now();
    let inserted = rt.block_on(store.insert_aeds_bulk(&data)).unwrap();
    println!(
        "insert_aeds_bulk: {inserted} AEDs into SQLite in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    drop(data);

    let mut g = c.benchmark_group("store");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function("load_aed_index 10^6 sqlite", |b| {
        b.iter(|| {
            let rows = rt.block_on(store.load_aed_index()).unwrap();
            assert_eq!(rows.len(), N);
            rows
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
