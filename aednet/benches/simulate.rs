//! The outcome simulator's cost: 200 arrests through the four policies' engines (each on its
//! own in-memory SQLite store, geoindex and virtual clock) and the bootstrap summary, on the
//! demo city and on Liechtenstein (`../shared/data/liechtenstein.osm.pbf` imported into a
//! fresh SQLite store, walking on its network), on a 2-worker runtime — the machine the goal
//! is set for. A run is linear in arrests (each is simulated on its own), so the goal "the
//! 2 000-arrest run stays under a minute on 2 cores" is ten of these under 6 s each; the
//! README also times the whole command.
//!
//! `cargo bench -p aednet --bench simulate` (with `--workspace` builds, run the bench binary
//! from `target/release/deps/simulate-*` with `--bench`).

use std::path::PathBuf;
use std::sync::Arc;

use aednet::simulate::{self, world::World, SimOptions};
use aednet_dispatch::Policy;
use criterion::{criterion_group, criterion_main, Criterion};

const ARRESTS: usize = 200;
const SEED: u64 = 20_261_124;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn liechtenstein(rt: &tokio::runtime::Runtime, dir: &std::path::Path) -> World {
    let pbf =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/liechtenstein.osm.pbf");
    rt.block_on(async {
        let store = aednet_store::connect(&format!("sqlite://{}", dir.join("li.db").display()))
            .await
            .unwrap();
        aednet_import::import_osm(
            store.as_ref(),
            &pbf,
            &aednet_import::ImportOptions::default(),
            &indicatif::ProgressBar::hidden(),
        )
        .await
        .unwrap();
        World::from_store(
            store.as_ref(),
            &aednet_api::coverage::CoverageConfig::default(),
            "Liechtenstein".into(),
            None,
            SEED,
        )
        .await
        .unwrap()
    })
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let worlds = [
        (
            "demo",
            World::demo(SEED, simulate::week0(), false, None).unwrap(),
        ),
        ("liechtenstein", liechtenstein(&rt, dir.path())),
    ];
    let o = SimOptions::new(ARRESTS, SEED, Policy::default());
    let mut g = c.benchmark_group("simulate_dispatch_200_arrests_4_policies");
    g.sample_size(10);
    for (name, w) in worlds {
        println!("{}", simulate::describe(&w));
        let w = Arc::new(w);
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = rt.block_on(simulate::run(&o, w.clone())).unwrap();
                std::hint::black_box(simulate::summary(&o, &r))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
