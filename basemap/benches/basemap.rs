//! Building the basemap of a synthetic grid town (streets, blocks of buildings), and finding a
//! tile in the archive. The real extract's build time is the import's report line (see the
//! README's performance table: `load-tests tiles`).

use std::collections::BTreeMap;

use aednet_basemap::{build, Archive, TileOptions};
use aednet_core::osm::{Extract, Origin, Way};
use aednet_core::LatLon;
use criterion::{criterion_group, criterion_main, Criterion};

fn grid_town(n: usize) -> Extract {
    let tags = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let d = 0.001;
    let (lat0, lon0) = (47.10, 9.50);
    let mut ways = Vec::new();
    let mut id = 0;
    for i in 0..=n {
        for (a, b) in [
            (
                (lat0 + i as f64 * d, lon0),
                (lat0 + i as f64 * d, lon0 + n as f64 * d),
            ),
            (
                (lat0, lon0 + i as f64 * d),
                (lat0 + n as f64 * d, lon0 + i as f64 * d),
            ),
        ] {
            id += 1;
            let coords: Vec<LatLon> = (0..=10i32)
                .map(|k| LatLon {
                    lat: a.0 + (b.0 - a.0) * f64::from(k) / 10.0,
                    lon: a.1 + (b.1 - a.1) * f64::from(k) / 10.0,
                })
                .collect();
            ways.push(Way {
                id,
                tags: tags(&[("highway", "residential"), ("name", "Gasse")]),
                nodes: (0..coords.len() as i64).map(|k| id * 100 + k).collect(),
                coords,
            });
        }
    }
    for i in 0..n {
        for j in 0..n {
            id += 1;
            let (la, lo) = (lat0 + i as f64 * d + d * 0.3, lon0 + j as f64 * d + d * 0.3);
            let s = d * 0.4;
            let coords = vec![
                LatLon { lat: la, lon: lo },
                LatLon {
                    lat: la,
                    lon: lo + s,
                },
                LatLon {
                    lat: la + s,
                    lon: lo + s,
                },
                LatLon {
                    lat: la + s,
                    lon: lo,
                },
                LatLon { lat: la, lon: lo },
            ];
            ways.push(Way {
                id,
                tags: tags(&[("building", "yes")]),
                nodes: vec![id * 100, id * 100 + 1, id * 100 + 2, id * 100 + 3, id * 100],
                coords,
            });
        }
    }
    Extract {
        ways,
        origin: Origin::Synthetic,
        ..Default::default()
    }
}

fn bench(c: &mut Criterion) {
    let town = grid_town(40);
    let mut g = c.benchmark_group("basemap");
    g.sample_size(10);
    g.bench_function("build grid town 40×40 blocks z8–16", |b| {
        b.iter(|| build(&town, &TileOptions::default(), |_| {}))
    });
    let built = build(&town, &TileOptions::default(), |_| {});
    let archive = Archive::decode(&built.bytes).unwrap();
    let ids = archive.ids();
    let mut i = 0;
    g.bench_function("tile lookup", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            let (z, x, y) = ids[i];
            archive.tile(z, x, y).map(<[u8]>::len)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
