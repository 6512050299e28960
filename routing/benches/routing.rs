//! The walking graph on `liechtenstein.osm.pbf`: build, decode of the artifact, snapping,
//! point-to-point walks 50–400 m apart, one-to-many within a 4-minute walk (336 m), and one
//! search answering ten candidates in turn (the caller's re-ranking).
//!
//! `cargo bench -p aednet-routing --bench routing`.

#[path = "../tests/common/pbf.rs"]
mod pbf;

use std::hint::black_box;

use aednet_core::geo_util::LatLon;
use aednet_routing::{Graph, Search, Snap, SnapOptions};
use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};

/// Sources, each with ten points 50–400 m around it (a caller and candidate AEDs).
fn neighbourhoods(g: &Graph, n: usize) -> Vec<(Snap, Vec<Snap>)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let opts = SnapOptions::default();
    let mut out = Vec::new();
    while out.len() < n {
        let a = LatLon {
            lat: rng.gen_range(47.05..47.22),
            lon: rng.gen_range(9.48..9.56),
        };
        let Some(sa) = g.snap(a, &opts) else { continue };
        let mut around = Vec::new();
        while around.len() < 10 {
            let b = LatLon {
                lat: a.lat + rng.gen_range(-0.003..0.003),
                lon: a.lon + rng.gen_range(-0.004..0.004),
            };
            if (50.0..400.0).contains(&a.distance_m(&b)) {
                if let Some(sb) = g.snap(b, &opts) {
                    around.push(sb);
                }
            }
        }
        out.push((sa, around));
    }
    out
}

fn pairs(g: &Graph, n: usize) -> Vec<(Snap, Snap)> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let opts = SnapOptions::default();
    let mut out = Vec::new();
    while out.len() < n {
        let a = LatLon {
            lat: rng.gen_range(47.05..47.22),
            lon: rng.gen_range(9.48..9.56),
        };
        let b = LatLon {
            lat: a.lat + rng.gen_range(-0.003..0.003),
            lon: a.lon + rng.gen_range(-0.004..0.004),
        };
        if !(50.0..400.0).contains(&a.distance_m(&b)) {
            continue;
        }
        if let (Some(x), Some(y)) = (g.snap(a, &opts), g.snap(b, &opts)) {
            out.push((x, y));
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let extract = pbf::read(&pbf::path());
    let mut group = c.benchmark_group("liechtenstein");
    group.sample_size(10);
    group.bench_function("build", |b| {
        b.iter(|| black_box(aednet_routing::build(&extract)))
    });
    let (g, _) = aednet_routing::build(&extract);
    let bytes = g.encode();
    group.bench_function("decode", |b| {
        b.iter(|| black_box(Graph::decode(&bytes).unwrap()))
    });
    group.finish();

    let ps = pairs(&g, 1000);
    let mut group = c.benchmark_group("queries");
    let opts = SnapOptions::default();
    let mut i = 0;
    group.bench_function("snap", |b| {
        b.iter(|| {
            i = (i + 1) % ps.len();
            black_box(g.snap(ps[i].0.point, &opts))
        })
    });
    group.bench_function("route_50_400m", |b| {
        b.iter(|| {
            i = (i + 1) % ps.len();
            black_box(g.route(&ps[i].0, &ps[i].1))
        })
    });
    let hoods = neighbourhoods(&g, 500);
    group.bench_function("one_to_many_336m_10_targets", |b| {
        b.iter(|| {
            i = (i + 1) % hoods.len();
            black_box(g.one_to_many(&hoods[i].0, &hoods[i].1, 33_600))
        })
    });
    group.bench_function("ten_candidates_in_turn", |b| {
        b.iter(|| {
            i = (i + 1) % hoods.len();
            aednet_routing::with_scratch(|s| {
                let mut search = Search::new(&g, s, &hoods[i].0);
                let costs: Vec<Option<u32>> = hoods[i]
                    .1
                    .iter()
                    .map(|t| search.cost_to(t, u32::MAX - 1))
                    .collect();
                black_box(costs)
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
