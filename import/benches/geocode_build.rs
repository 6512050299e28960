//! The address index of the Liechtenstein extract: places from the map features, the index
//! over them, and the stored form — the import's share of building it (the goal is
//! ≤ 10 s). Reading the PBF is the import's common pass and timed once, separately.
//!
//! `cargo bench -p aednet-import --bench geocode_build`

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/liechtenstein.osm.pbf"
    );
    let bytes = std::fs::read(path).expect("../shared/data/liechtenstein.osm.pbf");
    let filter = aednet_import::derived::feature_filters();
    let t = Instant::now();
    let (extract, _) = aednet_import::osm_extract::read_extract(&bytes, &filter, |_| {}).unwrap();
    eprintln!(
        "reading the extract (all builders' features): {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let (places, summary) = aednet_geocode::from_extract(&extract);
    eprintln!("{summary:?}");
    let mut g = c.benchmark_group("geocode_liechtenstein");
    g.sample_size(10);
    g.bench_function("places_index_and_encode", |b| {
        b.iter(|| {
            let (places, _) = aednet_geocode::from_extract(&extract);
            let ix = aednet_geocode::Index::build(places.clone());
            (ix.len(), aednet_geocode::encode(&places).len())
        })
    });
    g.bench_function("load_on_a_serving_node", |b| {
        let bytes = aednet_geocode::encode(&places);
        b.iter(|| aednet_geocode::Index::build(aednet_geocode::decode(&bytes).unwrap()).len())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
