//! The walking graph of the real extract: size, memory per node, connectivity, and walks that
//! are never shorter than the straight line.
//! `cargo test -p aednet-routing --test liechtenstein -- --nocapture` prints the figures.

#[path = "common/pbf.rs"]
mod pbf;

use aednet_core::geo_util::LatLon;
use aednet_routing::{cost_m, Graph, SnapOptions};
use rand::{Rng, SeedableRng};

#[test]
fn liechtenstein_graph() {
    let extract = pbf::read(&pbf::path());
    let t = std::time::Instant::now();
    let (g, report) = aednet_routing::build(&extract);
    let built = t.elapsed();
    let bytes = g.encode();
    println!(
        "{} ways used, {} nodes ({} junctions, {} of them dead ends), {} edges, {} components (largest {}), {:.0} km, built in {:?}, {:.1} B/node in memory, artifact {} KiB",
        report.ways_used,
        g.node_count(),
        g.junction_count(),
        g.dead_end_count(),
        g.edge_count(),
        g.component_count(),
        g.component_sizes()[0],
        g.length_m() / 1000.0,
        built,
        g.heap_bytes() as f64 / g.node_count() as f64,
        bytes.len() / 1024
    );
    println!("warnings: {:?}", report.warnings(&g));
    assert!(g.node_count() > 50_000, "{}", g.node_count());
    assert!(
        g.heap_bytes() <= 100 * g.node_count(),
        "{} B",
        g.heap_bytes()
    );
    assert!(u64::from(g.component_sizes()[0]) * 10 > 8 * g.node_count() as u64);
    let back = Graph::decode(&bytes).unwrap();
    assert_eq!(back.edge_count(), g.edge_count());

    // Random pairs 50–400 m apart in the main settlements: walks ≥ straight line, ratio sane.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let opts = SnapOptions::default();
    let mut ratios = Vec::new();
    while ratios.len() < 300 {
        let a = LatLon {
            lat: rng.gen_range(47.05..47.22),
            lon: rng.gen_range(9.48..9.56),
        };
        let b = LatLon {
            lat: a.lat + rng.gen_range(-0.003..0.003),
            lon: a.lon + rng.gen_range(-0.004..0.004),
        };
        let straight = a.distance_m(&b);
        if !(50.0..400.0).contains(&straight) {
            continue;
        }
        let (Some(sa), Some(sb)) = (g.snap(a, &opts), g.snap(b, &opts)) else {
            continue;
        };
        let Some(r) = g.route(&sa, &sb) else { continue };
        let walk = sa.off_m + cost_m(r.cost_cm) + sb.off_m;
        assert!(
            walk >= straight * 0.9999,
            "{walk} < {straight} for {a:?} → {b:?}"
        );
        ratios.push(walk / straight);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "walk / straight line over {} pairs 50–400 m apart: median {:.2}, p90 {:.2}",
        ratios.len(),
        ratios[ratios.len() / 2],
        ratios[ratios.len() * 9 / 10]
    );
}
