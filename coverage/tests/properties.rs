//! The coverage map against brute force: every cell's best time, covering AED and coverage
//! equal a scan over every AED with the same walk model and opening hours — after a full build
//! and after random sequences of incremental changes (readiness, moves, removals, new AEDs,
//! the clock moving forwards and backwards), whose reported changed cells must include every
//! cell that changed.

use std::sync::Arc;

use aednet_core::aed::{Access, ReadinessStatus};
use aednet_core::LatLon;
use aednet_coverage::{CoverageMap, DistrictArea, Grid, Mode, Params};
use aednet_geoindex::{AedDetail, AedEntry, Schedules};
use chrono::{DateTime, Duration, TimeZone, Utc};
use geo::{polygon, MultiPolygon};
use proptest::prelude::*;

const LAT0: f64 = 47.14;
const LON0: f64 = 9.51;
const HOURS: [Option<&str>; 6] = [
    Some("24/7"),
    Some("Mo-Fr 08:00-18:00"),
    None,
    Some("nonsense"),
    Some("10:00-14:00"),
    Some("Mo-Sa 07:00-21:30; PH off"),
];
const STATUSES: [ReadinessStatus; 5] = [
    ReadinessStatus::Ready,
    ReadinessStatus::Unknown,
    ReadinessStatus::Fault,
    ReadinessStatus::Degraded,
    ReadinessStatus::Offline,
];
const ACCESS: [Access; 4] = [Access::Yes, Access::No, Access::Private, Access::Unknown];

fn grid(res: u8) -> Arc<Grid> {
    let (dx, dy) = (0.03, 0.02);
    let area = MultiPolygon::new(vec![polygon![
        (x: LON0, y: LAT0), (x: LON0 + dx, y: LAT0), (x: LON0 + dx, y: LAT0 + dy), (x: LON0, y: LAT0 + dy), (x: LON0, y: LAT0)
    ]]);
    Arc::new(
        Grid::for_districts(
            &[DistrictArea {
                id: 1,
                population: Some(5000.0),
                area,
            }],
            aednet_coverage::resolution(res).unwrap(),
            &[],
        )
        .unwrap(),
    )
}

#[derive(Debug, Clone)]
struct Spec {
    id: i64,
    dx: f64,
    dy: f64,
    status: usize,
    access: usize,
    hours: usize,
    indoor: bool,
    floor: i8,
    locked: bool,
}

fn spec(id: i64) -> impl Strategy<Value = Spec> {
    (
        -0.005..0.035f64,
        -0.005..0.025f64,
        0..STATUSES.len(),
        0..ACCESS.len(),
        0..HOURS.len(),
        any::<bool>(),
        -1i8..4,
        any::<bool>(),
    )
        .prop_map(
            move |(dx, dy, status, access, hours, indoor, floor, locked)| Spec {
                id,
                dx,
                dy,
                status,
                access,
                hours,
                indoor,
                floor,
                locked,
            },
        )
}

fn entry(s: &Spec, schedules: &mut Schedules) -> AedEntry {
    let pos = LatLon::new(LAT0 + s.dy, LON0 + s.dx).unwrap();
    let tz: chrono_tz::Tz = "Europe/Vaduz".parse().unwrap();
    AedEntry {
        id: s.id,
        pos,
        access: ACCESS[s.access],
        status: STATUSES[s.status],
        indoor: Some(s.indoor),
        floor: (s.floor != 0).then_some(f64::from(s.floor)),
        cabinet_locked: s.locked,
        schedule: schedules.get(HOURS[s.hours], tz, pos),
        detail: Arc::new(AedDetail::default()),
    }
}

fn params(mode: usize, budget: f64) -> Params {
    Params {
        mode: [Mode::RoundTrip, Mode::OneWay, Mode::Radius][mode],
        budget_s: budget,
        radius_m: budget / 2.0,
        ..Params::default()
    }
}

/// Every cell: (best time, AED) by scanning every AED, straight from the hours rules.
fn brute(
    grid: &Grid,
    p: &Params,
    entries: &[AedEntry],
    t: DateTime<Utc>,
) -> Vec<Option<(f64, i64, f64)>> {
    grid.cells
        .iter()
        .map(|c| {
            let mut best: Option<(f64, i64, f64)> = None;
            for e in entries {
                if !p.eligible(e) || !p.open_in(e.schedule.hours().state(t)) {
                    continue;
                }
                let d = c.center.distance_m(&e.pos);
                let time = p.trip_s(d, e.indoor, e.floor, e.cabinet_locked);
                let linked = match p.mode {
                    Mode::Radius => d <= p.reach_m(),
                    _ => time <= p.horizon(),
                };
                if linked && best.is_none_or(|(bt, bid, _)| (time, e.id) < (bt, bid)) {
                    best = Some((time, e.id, d));
                }
            }
            best
        })
        .collect()
}

fn check(map: &CoverageMap, entries: &[AedEntry]) -> Result<(), TestCaseError> {
    let p = map.params();
    let expect = brute(map.grid(), p, entries, map.at());
    for (i, want) in expect.iter().enumerate() {
        let i32_ = i as u32;
        match want {
            None => {
                prop_assert_eq!(map.time_s(i32_), None, "cell {}", i);
                prop_assert!(!map.covered(i32_));
            }
            Some((t, id, d)) => {
                let got = map.time_s(i32_);
                prop_assert!(
                    got.is_some(),
                    "cell {} should be reached by {} in {}",
                    i,
                    id,
                    t
                );
                prop_assert!(
                    (got.unwrap() - t).abs() < 0.1,
                    "cell {}: {:?} vs {}",
                    i,
                    got,
                    t
                );
                // f32 storage: leave cells within a hair of a boundary alone.
                let near_edge = (t - p.budget_s).abs() < 0.01 || (d - p.radius_m).abs() < 0.01;
                if !near_edge {
                    prop_assert_eq!(map.best_aed(i32_), Some(*id), "cell {}", i);
                    prop_assert_eq!(map.covered(i32_), p.covers(*t, *d), "cell {}", i);
                }
            }
        }
    }
    Ok(())
}

fn week_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn full_build_matches_brute_force(
        specs in proptest::collection::vec(spec(0), 0..40),
        mode in 0usize..3,
        budget in 60.0..600.0f64,
        hour in 0i64..168,
        res in 9u8..=10,
    ) {
        let grid = grid(res);
        let p = params(mode, budget);
        let mut schedules = Schedules::default();
        let entries: Vec<AedEntry> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| entry(&Spec { id: i as i64 + 1, ..s.clone() }, &mut schedules))
            .collect();
        let t = week_start() + Duration::minutes(hour * 60 + 17);
        let map = CoverageMap::build(grid, p, entries.clone(), t);
        check(&map, &entries)?;
    }

    #[test]
    fn incremental_changes_match_a_fresh_build(
        specs in proptest::collection::vec(spec(0), 1..30),
        ops in proptest::collection::vec((0u8..5, 0usize..30, spec(0), -30i64..60), 1..25),
        mode in 0usize..3,
    ) {
        let grid = grid(9);
        let p = params(mode, 240.0);
        let mut schedules = Schedules::default();
        let mut entries: Vec<AedEntry> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| entry(&Spec { id: i as i64 + 1, ..s.clone() }, &mut schedules))
            .collect();
        let mut t = week_start() + Duration::hours(50);
        let mut map = CoverageMap::build(grid.clone(), p, entries.clone(), t);
        let mut next_id = 1000;
        for (kind, pick, new, hours) in ops {
            let before: Vec<_> = (0..grid.len() as u32).map(|c| map.view(c)).collect();
            let changed = match kind {
                0 if !entries.is_empty() => {
                    let i = pick % entries.len();
                    let status = STATUSES[new.status];
                    entries[i].status = status;
                    map.set_status(entries[i].id, status)
                }
                1 if !entries.is_empty() => {
                    let i = pick % entries.len();
                    let e = entry(&Spec { id: entries[i].id, ..new }, &mut schedules);
                    entries[i] = e.clone();
                    map.upsert(e)
                }
                2 if !entries.is_empty() => {
                    let i = pick % entries.len();
                    let e = entries.remove(i);
                    map.remove(e.id)
                }
                3 => {
                    next_id += 1;
                    let e = entry(&Spec { id: next_id, ..new }, &mut schedules);
                    entries.push(e.clone());
                    map.upsert(e)
                }
                _ => {
                    t += Duration::minutes(hours * 13);
                    map.advance(t)
                }
            };
            check(&map, &entries)?;
            for (c, old) in before.iter().enumerate() {
                if *old != map.view(c as u32) {
                    prop_assert!(changed.contains(&(c as u32)), "cell {} changed unreported", c);
                }
            }
            // And the incremental map equals one built from scratch.
            let fresh = CoverageMap::build(grid.clone(), p, entries.clone(), t);
            for c in 0..grid.len() as u32 {
                prop_assert_eq!(fresh.view(c), map.view(c));
            }
        }
    }
}

#[test]
fn next_change_is_the_earliest_opening_hours_boundary() {
    let grid = grid(9);
    let mut schedules = Schedules::default();
    let office = Spec {
        id: 1,
        dx: 0.01,
        dy: 0.01,
        status: 0,
        access: 0,
        hours: 1,
        indoor: false,
        floor: 0,
        locked: false,
    };
    let e = entry(&office, &mut schedules);
    // Monday 2026-11-23 07:00 local (06:00 UTC): closed, opens at 08:00 local.
    let t = Utc.with_ymd_and_hms(2026, 11, 23, 6, 0, 0).unwrap();
    let mut map = CoverageMap::build(grid, Params::default(), vec![e.clone()], t);
    assert!(!map.is_active(1));
    let open_at = map.next_change().unwrap();
    assert_eq!(
        open_at,
        Utc.with_ymd_and_hms(2026, 11, 23, 7, 0, 0).unwrap()
    );
    // A second before: nothing changes; at the boundary the AED's cells are recomputed.
    assert!(map.advance(open_at - Duration::seconds(1)).is_empty());
    let changed = map.advance(open_at);
    assert!(map.is_active(1));
    assert!(!changed.is_empty());
    assert_eq!(changed.len(), map.cover_set(1).len().max(changed.len()));
    assert_eq!(
        map.next_change().unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 23, 17, 0, 0).unwrap()
    );
}

#[test]
fn weekly_profile_counts_hours_and_24_7() {
    let grid = grid(9);
    let mut schedules = Schedules::default();
    let office = Spec {
        id: 1,
        dx: 0.01,
        dy: 0.01,
        status: 0,
        access: 0,
        hours: 1,
        indoor: false,
        floor: 0,
        locked: false,
    };
    let always = Spec {
        id: 2,
        dx: 0.02,
        dy: 0.005,
        hours: 0,
        ..office.clone()
    };
    let entries = vec![
        entry(&office, &mut schedules),
        entry(&always, &mut schedules),
    ];
    let map = CoverageMap::build(
        grid,
        Params::default(),
        entries,
        week_start() + Duration::hours(30),
    );
    let tz: chrono_tz::Tz = "Europe/Vaduz".parse().unwrap();
    let week = &map.weekly(tz, 1, |_| Some(0))[0];
    assert_eq!(week.len(), 168);
    let (mon_10, mon_3, sat_10) = (week[10], week[3], week[5 * 24 + 10]);
    assert!(mon_10.share > mon_3.share, "{mon_10:?} {mon_3:?}");
    assert_eq!(mon_3.share, sat_10.share);
    for h in week {
        assert!(h.share <= h.share_all_24_7 + 1e-12);
        assert_eq!(h.share_all_24_7, mon_10.share);
    }
}
