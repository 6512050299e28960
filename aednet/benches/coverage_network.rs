//! The 4-minute map on Liechtenstein's walking network (`../shared/data/liechtenstein.osm.pbf`
//! imported into a fresh SQLite store: 11 municipalities, 1 572 res-9 cells, 148 AEDs): a full
//! recompute (every AED's walks searched again, every cell's best time), the hourly refresh, and
//! one AED's readiness change; the straight-line build beside them.
//!
//! `cargo bench -p aednet --bench coverage_network`. Goals: full recompute ≤ 1 s, one AED's
//! change ≤ 10 ms.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use aednet_api::coverage::{build_grid, load_network, CoverageConfig};
use aednet_core::aed::ReadinessStatus;
use aednet_coverage::{CellNetwork, CoverageMap};
use aednet_geoindex::{GeoIndex, WalkKind, WalkModel};
use chrono::{Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};

fn bench(c: &mut Criterion) {
    let pbf =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/liechtenstein.osm.pbf");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (net, graph) = rt.block_on(async {
        let store =
            aednet_store::connect(&format!("sqlite://{}", dir.path().join("li.db").display()))
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
        let net = load_network(store.as_ref(), &GeoIndex::default())
            .await
            .unwrap();
        let art = store
            .get_artifact(aednet_store::artifacts::kind::WALK_GRAPH)
            .await
            .unwrap()
            .unwrap();
        (
            net,
            Arc::new(aednet_routing::Graph::decode(&art.bytes).unwrap()),
        )
    });
    let config = CoverageConfig::default();
    let grid = Arc::new(build_grid(&net.districts, config.res, &[]).unwrap());
    let walk = WalkModel::default();
    let params = config.params(walk);
    assert_eq!(params.walk_on, WalkKind::Network);
    let t = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
    let started = std::time::Instant::now();
    let cells = Arc::new(CellNetwork::new(graph.clone(), &grid, &walk));
    println!(
        "{} cells, {} AEDs, {} graph nodes ({} junctions); cell centres snapped in {:.1} ms",
        grid.len(),
        net.entries.len(),
        graph.node_count(),
        graph.junction_count(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    let straight_params = aednet_coverage::Params {
        walk_on: WalkKind::StraightLine,
        ..params
    };

    let mut g = c.benchmark_group("liechtenstein_coverage");
    g.sample_size(10);
    g.bench_function("full_recompute_network", |b| {
        b.iter(|| {
            black_box(CoverageMap::build_on(
                grid.clone(),
                params,
                net.entries.clone(),
                t,
                Some(cells.clone()),
            ))
        })
    });
    g.bench_function("full_recompute_straight_line", |b| {
        b.iter(|| {
            black_box(CoverageMap::build(
                grid.clone(),
                straight_params,
                net.entries.clone(),
                t,
            ))
        })
    });
    let mut map = CoverageMap::build_on(
        grid.clone(),
        params,
        net.entries.clone(),
        t,
        Some(cells.clone()),
    );
    assert_eq!(map.walk_used(), WalkKind::Network);
    g.sample_size(50);
    g.bench_function("hourly_refresh_network", |b| {
        let mut k = 0;
        b.iter(|| {
            k += 1;
            map.refresh(t + Duration::hours(if k % 2 == 0 { 0 } else { 12 }));
            black_box(map.covered(0))
        })
    });
    map.refresh(t);
    let ids: Vec<i64> = net.entries.iter().map(|e| e.id).collect();
    g.sample_size(100);
    g.bench_function("one_aed_readiness_change_network", |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7) % ids.len();
            let id = ids[i];
            let status = if map.is_active(id) {
                ReadinessStatus::Fault
            } else {
                ReadinessStatus::Ready
            };
            black_box(map.set_status(id, status))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
