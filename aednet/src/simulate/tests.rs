use super::*;

fn demo(seed: u64) -> Arc<World> {
    Arc::new(World::demo(seed, week0(), false, None).unwrap())
}

fn opts(seed: u64) -> SimOptions {
    SimOptions {
        bootstrap: 200,
        ..SimOptions::new(40, seed, Policy::default())
    }
}

#[test]
fn walks_are_timed_on_the_demo_streets() {
    let w = demo(7);
    let g = w.graph.as_deref().expect("the demo city has streets");
    let mut differ = 0;
    for pair in w.aeds.windows(2).take(30) {
        let (a, b) = (pair[0].pos, pair[1].pos);
        let streets = travel_m(Some(g), a, b);
        // Never shorter than the straight line (up to rounding of the snap).
        assert!(streets >= a.distance_m(&b) - 1.0, "{a:?} {b:?}");
        if (streets - travel_m(None, a, b)).abs() > 1.0 {
            differ += 1;
        }
    }
    assert!(
        differ > 0,
        "the streets changed no walk: the network is not used"
    );
}

#[test]
fn rescuers_follow_the_density_asked_for_and_the_districts_targets() {
    let w = World::demo(7, week0(), false, Some(10.0)).unwrap();
    let expected = w.population() * 10.0 / 1000.0;
    let n = w.rescuers.len() as f64;
    assert!((n - expected).abs() < 0.02 * expected, "{n} vs {expected}");
    // Without a rate, the districts' own target (the demo follows the plans: 2 %).
    let w = demo(7);
    for d in &w.districts {
        assert!((d.rescuers_per_1000 - 20.0).abs() < 0.5, "{d:?}");
    }
    let n = w.rescuers.len() as f64;
    assert!((n / w.population() - 0.02).abs() < 0.001);
    // Fewer on duty at night than in the evening; the mean is the one asked for.
    let mean: f64 = (0..24).map(|h| world::on_duty_share(0.25, h)).sum::<f64>() / 24.0;
    assert!((mean - 0.25).abs() < 1e-9);
    assert!(world::on_duty_share(0.25, 3) < world::on_duty_share(0.25, 19) / 3.0);
}

#[test]
fn the_dense_core_is_denser_and_has_more_aeds() {
    let w = demo(7);
    let d = World::demo(7, week0(), true, None).unwrap();
    let max = |w: &World| w.cells.iter().map(world::Cell::density).fold(0.0, f64::max);
    assert!(max(&d) > 20_000.0, "{}", max(&d));
    assert!(max(&w) < max(&d));
    assert!(d.aeds.len() > w.aeds.len());
    assert!(d.rescuers.len() > w.rescuers.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deterministic_through_the_engine_and_every_policy_is_measured() {
    let o = opts(7);
    let w = demo(7);
    let r = run(&o, w.clone()).await.unwrap();
    let a = table(&o, &w, &r, &summary(&o, &r));
    let r2 = run(&o, w.clone()).await.unwrap();
    let b = table(&o, &w, &r2, &summary(&o, &r2));
    assert_eq!(a, b, "the same seed gives the same table");
    let o8 = opts(8);
    let r8 = run(&o8, w.clone()).await.unwrap();
    assert_ne!(
        a,
        table(&o8, &w, &r8, &summary(&o8, &r8)),
        "another seed, other arrests"
    );
    for (style, v) in &r {
        assert_eq!(v.len(), 40, "{style:?}");
        for x in v {
            assert!(
                x.cpr_s <= x.aed_s,
                "the first AED is also someone at the patient"
            );
            assert!(x.ems_s > 0.0 && x.ems_s.is_finite());
        }
        assert!(
            v.iter().map(|x| x.alerts).sum::<u32>() > 0,
            "{style:?} alerted nobody"
        );
    }
    // All-direct GoodSAM-style dispatch never brings an AED; role-based policies do.
    let get = |st: Style| &r.iter().find(|(s, _)| *s == st).unwrap().1;
    assert!(get(Style::GoodSam).iter().all(|x| x.aed_s.is_infinite()));
    assert!(get(Style::GoodSam).iter().all(|x| x.fetch_alerts == 0));
    assert!(get(Style::Aednet).iter().any(|x| x.fetch_alerts > 0));
    assert!(get(Style::HeartRunner).iter().any(|x| x.fetch_alerts > 0));
    // The same arrests for every policy: the EMS draw is the arrest's.
    let ems: Vec<f64> = get(Style::Aednet).iter().map(|x| x.ems_s).collect();
    assert_eq!(
        ems,
        get(Style::GoodSam)
            .iter()
            .map(|x| x.ems_s)
            .collect::<Vec<_>>()
    );
    assert!(a.contains("aednet − "), "{a}");
    let c = csv(&r, &summary(&o, &r));
    assert_eq!(c.lines().count(), 1 + 4 * 6 + 3 * 6);
}

#[tokio::test]
async fn an_arrest_runs_through_the_engine_with_its_audit_trail() {
    // One arrest, one policy, by hand: the engine's store holds the closed incident with
    // offers, answers and time-outs on the virtual clock.
    let o = opts(3);
    let w = demo(3);
    let all = arrests(
        &SimOptions {
            incidents: 200,
            ..o.clone()
        },
        &w,
    );
    let (n, a) = all
        .iter()
        .enumerate()
        .find(|(_, a)| a.on_duty.len() > 30)
        .expect("some arrest with rescuers near");
    let bench = Bench::new(&w, Style::GoodSam.policy(&o.policy), week0())
        .await
        .unwrap();
    let out = bench.arrest(&o, &w, n, a).await.unwrap();
    let inc = bench.engine.get(1).await.unwrap();
    assert!(!inc.state.is_open(), "closed at the end");
    assert!(inc.closed_at.unwrap() >= a.at, "on the virtual clock");
    assert!(inc.offers.iter().all(|x| x.offered_at >= a.at));
    let audit = bench.state.store.incident_audit(1).await.unwrap();
    assert_eq!(audit.len(), inc.audit.len(), "every step persisted");
    assert_eq!(out.alerts as usize, inc.offers.len());
}

#[tokio::test]
async fn a_database_city_is_simulated_like_the_demo() {
    // The demo city written into a real store (districts, AEDs, the walking network built by
    // the import's own step), read back as any imported city would be.
    let store = aednet_store::connect("sqlite::memory:").await.unwrap();
    let city = crate::demo::generate(5, week0());
    crate::demo::load(store.as_ref(), &city).await.unwrap();
    let config = aednet_api::coverage::CoverageConfig::default();
    let w = World::from_store(store.as_ref(), &config, "stored".into(), Some(5.0), 5)
        .await
        .unwrap();
    assert_eq!(w.aeds.len(), city.aeds.len());
    assert!(w.graph.is_some(), "the stored walking network is used");
    let people: i64 = city.districts.iter().filter_map(|d| d.population).sum();
    // No grid configured: the districts' totals spread over their cells.
    assert!((w.population() - people as f64).abs() < 0.01 * people as f64);
    let expected = w.population() * 5.0 / 1000.0;
    assert!((w.rescuers.len() as f64 - expected).abs() < 0.03 * expected);
    let o = SimOptions {
        incidents: 10,
        ..opts(5)
    };
    let r = run(&o, Arc::new(w.clone())).await.unwrap();
    assert!(r.iter().all(|(_, v)| v.len() == 10));

    // The sweep: extra AEDs at the planner's greedy sites; more AEDs never lower coverage.
    let at = week0() + chrono::Duration::hours(12);
    let (map, _, tz) =
        aednet_api::coverage::offline_map(store.as_ref(), &config, Default::default(), at)
            .await
            .unwrap();
    let so = sweep::SweepOptions {
        sim: SimOptions {
            incidents: 12,
            ..opts(5)
        },
        rescuers_per_1000: vec![5.0, 20.0],
        aeds_per_10k: vec![10.0, 0.0, 3.0],
    };
    let points = sweep::sweep(&so, &w, &map, tz).await.unwrap();
    assert_eq!(points.len(), 6);
    let today = w.aeds.len();
    assert_eq!(points[0].aeds, today, "0 per 10 000: today's network");
    for pair in points.windows(2) {
        assert!(pair[1].aeds >= pair[0].aeds);
        assert!(
            pair[1].coverage_share >= pair[0].coverage_share - 1e-12,
            "{pair:?}"
        );
    }
    let most = points.last().unwrap();
    assert!(most.aeds > today);
    assert!(
        (most.aeds_per_10k - 10.0).abs() < 0.1,
        "{}",
        most.aeds_per_10k
    );
    assert!(most.coverage_share > points[0].coverage_share);
    let text = sweep::csv(&w, &points);
    assert_eq!(text.lines().count(), 7);
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("sweep.png");
    chart::png("test", &points, &png).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
}

#[test]
fn the_other_services_rules_do_not_follow_aednets_knobs() {
    // aednet's policy with every knob moved: the other rows stay as their services publish.
    let tuned = Policy {
        fetchers_per_aed: 5,
        fetch_confidence: 0.99,
        cpr_confidence: 0.9,
        aed_target_s: 480.0,
        accept_from_record: true,
        expected_accept: 0.5,
        max_alerts: 40,
        ..Policy::default()
    };
    for style in [Style::GoodSam, Style::HeartRunner, Style::HartslagNu] {
        let p = style.policy(&tuned);
        assert_eq!(p, style.policy(&Policy::default()), "{style:?}");
        assert_eq!(p.fetchers_per_aed, 1, "{style:?}: one fetcher per AED");
        assert_eq!(
            p.fetch_confidence, 0.0,
            "{style:?}: every fetch role filled"
        );
        assert_eq!(p.cpr_confidence, 0.0, "{style:?}");
        assert!(!p.accept_from_record, "{style:?}");
    }
    assert_eq!(Style::Aednet.policy(&tuned), tuned);
    // HeartRunner-style: the nearest to CPR, the other 19 each to a different AED.
    let hr = Style::HeartRunner.policy(&tuned);
    assert_eq!((hr.cpr_direct, hr.max_fetchers, hr.max_alerts), (1, 19, 20));
}

#[test]
fn people_known_only_as_totals_live_where_the_streets_meet() {
    use aednet_coverage::{grid::cell_at, Grid, PopulationPoint};
    // Two res-9 cells ~1.5 km apart, each standing for 500 people spread evenly; the first
    // has a crossroads (one junction of four ways), the second only a lane through it.
    let res = aednet_coverage::resolution(9).unwrap();
    let a = LatLon {
        lat: 47.1400,
        lon: 9.5200,
    };
    let b = LatLon {
        lat: 47.1535,
        lon: 9.5200,
    };
    let grid = Grid::from_points(
        &[
            PopulationPoint {
                pos: a,
                population: 500.0,
            },
            PopulationPoint {
                pos: b,
                population: 500.0,
            },
        ],
        res,
    );
    assert_eq!(grid.len(), 2);
    let e7 = |p: LatLon, dy: f64, dx: f64| {
        (
            ((p.lat + dy) * 1e7).round() as i32,
            ((p.lon + dx) * 1e7).round() as i32,
        )
    };
    let d = 0.0004;
    let coords = vec![
        e7(a, 0.0, 0.0),
        e7(a, d, 0.0),
        e7(a, -d, 0.0),
        e7(a, 0.0, d),
        e7(a, 0.0, -d),
        e7(a, -d, d),
        e7(b, -d, 0.0),
        e7(b, 0.0, 0.0),
        e7(b, d, 0.0),
    ];
    let edge = |a: u32, b: u32| aednet_routing::Edge {
        a,
        b,
        cost_cm: 1000,
    };
    let g = aednet_routing::Graph::from_parts(
        coords,
        vec![
            edge(0, 1),
            edge(0, 2),
            edge(0, 3),
            edge(0, 4),
            edge(3, 5),
            edge(2, 5),
            edge(6, 7),
            edge(7, 8),
        ],
    );
    let mut cells: Vec<world::Cell> = grid
        .cells
        .iter()
        .map(|c| world::Cell {
            pos: c.center,
            side_m: c.cell.area_m2().sqrt(),
            population: c.population,
            district: 0,
        })
        .collect();
    let k_a = grid.index_of(cell_at(a, res).unwrap()).unwrap() as usize;
    let k_b = 1 - k_a;
    assert_eq!(
        world::spread_by_streets(&mut cells, &[true, true], &grid, &g),
        1
    );
    assert!((cells[k_a].population - 1000.0).abs() < 1e-9, "{cells:?}");
    assert_eq!(cells[k_b].population, 0.0);

    // A cell with its own grid figure is left as it is.
    let mut kept: Vec<world::Cell> = cells
        .iter()
        .map(|c| world::Cell {
            population: 500.0,
            ..*c
        })
        .collect();
    assert_eq!(
        world::spread_by_streets(&mut kept, &[false, false], &grid, &g),
        0
    );
    assert!(kept.iter().all(|c| c.population == 500.0));
}
