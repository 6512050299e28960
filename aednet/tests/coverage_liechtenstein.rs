//! Coverage of the real Liechtenstein extract (../shared/data/liechtenstein.osm.pbf): imported
//! into a fresh SQLite store, the 11 municipalities (population from their place nodes) become
//! the grid; the dashboard rows and the coverage map are computed on a Wednesday at 11:00 and
//! for every hour of that week, in each mode; `aednet plan` runs on it.
//!
//! `cargo test -p aednet --test coverage_liechtenstein -- --nocapture` prints the README figures.

use std::path::PathBuf;

use aednet_api::coverage::{district_counts, district_rows_from, offline_map, CoverageConfig};
use aednet_coverage::Mode;
use aednet_geoindex::WalkModel;
use chrono::{TimeZone, Timelike, Utc};
use indicatif::ProgressBar;

#[tokio::test]
async fn liechtenstein_summary_and_coverage() {
    let pbf =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/liechtenstein.osm.pbf");
    assert!(pbf.exists(), "{} is missing", pbf.display());
    let dir = tempfile::tempdir().unwrap();
    let store = aednet_store::connect(&format!("sqlite://{}", dir.path().join("li.db").display()))
        .await
        .unwrap();
    aednet_import::import_osm(
        store.as_ref(),
        &pbf,
        &aednet_import::ImportOptions::default(),
        &ProgressBar::hidden(),
    )
    .await
    .unwrap();

    // Wednesday 25 November 2026, 11:00 in Vaduz (UTC+1).
    let at = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
    let config = CoverageConfig::default();
    let started = std::time::Instant::now();
    let (map, districts, tz) = offline_map(store.as_ref(), &config, WalkModel::default(), at)
        .await
        .unwrap();
    println!(
        "map: {} cells at res 9, {} AEDs, built in {:.0} ms (debug build), zone {}",
        map.grid().len(),
        map.aed_count(),
        started.elapsed().as_secs_f64() * 1000.0,
        tz.name()
    );
    assert_eq!(tz.name(), "Europe/Vaduz");
    assert_eq!(map.aed_count(), 148);
    assert_eq!(districts.len(), 11);
    let counts = district_counts(store.as_ref(), at.date_naive())
        .await
        .unwrap();
    let rows = district_rows_from(&map, districts.clone(), counts, tz);
    // The same map with straight-line walks (the import stored the walking network, so the
    // default map walks on it).
    assert_eq!(map.walk_used(), aednet_geoindex::WalkKind::Network);
    let straight_cfg = CoverageConfig {
        walk: aednet_geoindex::WalkKind::StraightLine,
        ..CoverageConfig::default()
    };
    let (straight, _, _) = offline_map(store.as_ref(), &straight_cfg, WalkModel::default(), at)
        .await
        .unwrap();
    let straight_rows = district_rows_from(
        &straight,
        districts.clone(),
        district_counts(store.as_ref(), at.date_naive())
            .await
            .unwrap(),
        tz,
    );
    println!(
        "| municipality | population | AEDs | usable | 24/7 | per 10 000 | cells | covered now, straight line × 1.2 | covered now, walking network | at night, network |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut total_pop = 0;
    for (r, s) in rows.iter().zip(&straight_rows) {
        assert_eq!(r.id, s.id);
        let cells = map
            .grid()
            .cells
            .iter()
            .filter(|c| c.district == Some(r.id))
            .count();
        println!(
            "| {} | {} | {} | {} | {} | {:.1} | {} | {:.1} % | {:.1} % | {:.1} % |",
            r.name,
            r.population.unwrap_or(0),
            r.aeds_total,
            r.aeds_usable,
            r.aeds_24_7,
            r.aeds_per_10k.unwrap_or(0.0),
            cells,
            s.coverage_share_now * 100.0,
            r.coverage_share_now * 100.0,
            r.coverage_share_night * 100.0
        );
        total_pop += r.population.unwrap_or(0);
        assert!(r.population.unwrap_or(0) > 0, "{} has a population", r.name);
        assert!((r.population_in_cells - r.population.unwrap() as f64).abs() < 1.0);
        assert!(r.coverage_share_now <= 1.0 && r.coverage_share_night <= 1.0);
    }
    assert_eq!(total_pop, 37_269);
    let all = map.summary(|_| true);
    assert!(all.share > 0.0 && all.share < 1.0, "{all:?}");
    let s_all = straight.summary(|_| true);
    println!(
        "country, round trip 240 s, now: straight line × 1.2 {:.1} % of people ({} cells) vs walking network {:.1} % ({} cells)",
        s_all.share * 100.0,
        s_all.covered_cells,
        all.share * 100.0,
        all.covered_cells
    );
    for (name, m) in [("straight", &straight), ("network", &map)] {
        let one = CoverageConfig {
            mode: Mode::OneWay,
            walk: m.walk_used(),
            ..CoverageConfig::default()
        };
        let (o, _, _) = offline_map(store.as_ref(), &one, WalkModel::default(), at)
            .await
            .unwrap();
        println!(
            "  one way 240 s, {name}: {:.1} %",
            o.summary(|_| true).share * 100.0
        );
    }

    // The week, country-wide: actual against every AED 24/7.
    let week = &map.weekly(tz, 1, |_| Some(0))[0];
    let mean = |f: &dyn Fn(&aednet_coverage::HourShare) -> bool| {
        let v: Vec<f64> = week.iter().filter(|h| f(h)).map(|h| h.share).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let night = mean(&|h| h.at.with_timezone(&tz).hour() < 6);
    let weekday_day = mean(&|h| h.hour < 120 && (9..17).contains(&h.at.with_timezone(&tz).hour()));
    let all_24_7 = week[0].share_all_24_7;
    println!(
        "country, round trip 240 s: now {:.1} % of people ({:.0} of {:.0}); weekdays 09–17 {:.1} %; \
         nights {:.1} %; week mean {:.1} %; if every AED were 24/7 {:.1} %",
        all.share * 100.0,
        all.covered_population,
        all.population,
        weekday_day * 100.0,
        night * 100.0,
        mean(&|_| true) * 100.0,
        all_24_7 * 100.0
    );
    assert!(night < weekday_day, "office-hours AEDs close at night");
    assert!(weekday_day <= all_24_7 + 1e-12);

    for (mode, budget) in [
        (Mode::OneWay, 240.0),
        (Mode::RoundTrip, 480.0),
        (Mode::Radius, 240.0),
    ] {
        let cfg = CoverageConfig {
            mode,
            budget_s: budget,
            ..CoverageConfig::default()
        };
        let (m, _, _) = offline_map(store.as_ref(), &cfg, WalkModel::default(), at)
            .await
            .unwrap();
        let s = m.summary(|_| true);
        println!(
            "country, {} {} s{}: {:.1} % of people",
            mode.as_str(),
            budget,
            if mode == Mode::Radius {
                " (100 m radius)"
            } else {
                ""
            },
            s.share * 100.0
        );
        if mode != Mode::Radius {
            // A longer reach never covers less.
            assert!(s.share >= all.share - 1e-12);
        }
    }

    // The planner on the real map: ten more units in Vaduz.
    let vaduz = districts.iter().find(|d| d.data.name == "Vaduz").unwrap();
    let args = aednet::plan::PlanArgs {
        add: 10,
        district: Some("Vaduz".into()),
        candidates: None,
        relocate: 2,
        suggest_24_7: true,
        at: Some(at),
        json: false,
    };
    aednet::plan::run(store.as_ref(), &config, WalkModel::default(), args)
        .await
        .unwrap();
    let req = aednet_coverage::PlanRequest {
        add: 10,
        district: Some(vaduz.id),
        ..Default::default()
    };
    let p = aednet_coverage::plan(&map, &req);
    assert_eq!(p.sites.len(), 10);
    assert!(p.after.share > p.before.share);
}
