//! Search over 10^6 synthetic address points (half a Chinese 门牌 register, half German-spelt
//! streets with umlauts), in-process: criterion times typical queries, and a pass over 2 000
//! varied queries (exact, partial, misspelt, being typed) prints p50/p99/max — the issue's
//! goal is p99 ≤ 20 ms.
//!
//! `cargo bench -p aednet-geocode --bench geocode`

use std::time::Instant;

use aednet_core::geo_util::LatLon;
use aednet_geocode::synthetic::{chinese, latin, Entry};
use aednet_geocode::Index;
use criterion::{criterion_group, criterion_main, Criterion};

const N: usize = 1_000_000;

fn queries(zh: &[Entry], de: &[Entry]) -> Vec<(String, Option<LatLon>)> {
    let mut out = Vec::new();
    for (i, e) in zh.iter().step_by(zh.len() / 1000).enumerate() {
        let [d, road, no] = &e.parts;
        let near = LatLon {
            lat: e.lat,
            lon: e.lon,
        };
        out.push(match i % 3 {
            0 => (format!("{d}{road}{no}"), None),
            1 => (format!("{road} {no}"), Some(near)),
            _ => (format!("{d}{road}"), Some(near)),
        });
    }
    for (i, e) in de.iter().step_by(de.len() / 1000).enumerate() {
        let [street, no, town] = &e.parts;
        let near = LatLon {
            lat: e.lat,
            lon: e.lon,
        };
        let plain = street
            .replace('Ä', "A")
            .replace('ä', "a")
            .replace('ü', "u")
            .replace('ö', "o");
        out.push(match i % 4 {
            0 => (format!("{street} {no}, {town}"), None),
            1 => (format!("{} {no}", plain.to_lowercase()), Some(near)),
            // Misspelt: a letter dropped.
            2 => (format!("{}{} {no}", &plain[..2], &plain[3..]), Some(near)),
            // Being typed.
            _ => (plain[..plain.len().min(6)].to_string(), Some(near)),
        });
    }
    out
}

fn bench(c: &mut Criterion) {
    let zh = chinese(N / 2, 1);
    let de = latin(N / 2, 2);
    let places = zh.iter().chain(&de).map(Entry::place).collect::<Vec<_>>();
    let t = Instant::now();
    let ix = Index::build(places);
    eprintln!(
        "index of {} places, {} words built in {:.2} s",
        ix.len(),
        ix.vocabulary(),
        t.elapsed().as_secs_f64()
    );
    let qs = queries(&zh, &de);
    let mut times: Vec<f64> = Vec::with_capacity(qs.len());
    let mut found = 0;
    for (q, near) in &qs {
        let t = Instant::now();
        let hits = ix.search(q, *near, 10);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        found += usize::from(!hits.is_empty());
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    eprintln!(
        "{} queries ({} with answers): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        times.len(),
        found,
        pct(0.50),
        pct(0.99),
        times[times.len() - 1]
    );
    let near = LatLon {
        lat: 28.97,
        lon: 118.87,
    };
    let mut g = c.benchmark_group("geocode_1e6");
    g.bench_function("zh_district_road_number", |b| {
        b.iter(|| ix.search("柯城区人民路12号", None, 10))
    });
    g.bench_function("zh_road_number_near", |b| {
        b.iter(|| ix.search("荷花路 3号", Some(near), 10))
    });
    g.bench_function("de_misspelt_without_umlaut", |b| {
        b.iter(|| ix.search("Aulestrase 5 Vaduz", None, 10))
    });
    g.bench_function("de_prefix_being_typed", |b| {
        b.iter(|| {
            ix.search(
                "bahnh",
                Some(LatLon {
                    lat: 47.14,
                    lon: 9.52,
                }),
                10,
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
