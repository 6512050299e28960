//! The indexes against brute force over random data, including points near the antimeridian
//! and the poles: the caller's filtered, time-ranked query for every combination of filters;
//! sequences of upserts, status changes and removals; rescuer moves, expiry and radius queries;
//! H3 disks; stations by kind.

use std::collections::HashMap;
use std::sync::Arc;

use aednet_core::aed::{Access, ReadinessStatus};
use aednet_core::station::StationKind;
use aednet_core::LatLon;
use aednet_geoindex::{
    evaluate, rank, AedDetail, AedEntry, AedIndex, Filters, HoursPolicy, ReadinessFilter,
    RescuerIndex, Schedules, WalkModel, CELL_RES,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

const HOURS: &[Option<&str>] = &[
    Some("24/7"),
    Some("Mo-Fr 08:00-17:00"),
    Some("Mo-Su 22:00-06:00"),
    Some("Mo-Su 10:00-10:20"),
    None,
    Some("nonsense"),
];

fn entry(id: i64, (lat, lon): (f64, f64), code: u16, schedules: &mut Schedules) -> AedEntry {
    let pos = LatLon::new(lat, lon).unwrap();
    let access = Access::ALL[usize::from(code) % Access::ALL.len()];
    let status = ReadinessStatus::ALL[usize::from(code / 7) % ReadinessStatus::ALL.len()];
    let raw = HOURS[usize::from(code / 3) % HOURS.len()];
    AedEntry {
        id,
        pos,
        access,
        status,
        indoor: [None, Some(true), Some(false)][usize::from(code / 11) % 3],
        floor: [None, Some(0.0), Some(3.0), Some(-1.0)][usize::from(code / 5) % 4],
        cabinet_locked: code.is_multiple_of(13),
        schedule: schedules.get(raw, chrono_tz::UTC, pos),
        detail: Arc::new(AedDetail::default()),
    }
}

/// Latitude/longitude anywhere, or clustered where degree-based nearest goes wrong; and some
/// dense city-scale clusters where walking times and hours decide the order.
fn point() -> impl Strategy<Value = (f64, f64)> {
    prop_oneof![
        (-89.9..89.9f64, -180.0..180.0f64),
        (
            -5.0..5.0f64,
            prop_oneof![179.0..180.0f64, -180.0..-179.0f64]
        ),
        (
            prop_oneof![85.0..89.99f64, -89.99..-85.0f64],
            -180.0..180.0f64
        ),
        (28.95..28.99f64, 118.85..118.89f64),
    ]
}

fn filters() -> impl Strategy<Value = Filters> {
    (
        0u8..3,
        any::<bool>(),
        0u8..3,
        0u8..3,
        prop::option::of(0.1..3000.0f64),
        0i64..(7 * 24 * 60),
    )
        .prop_map(|(r, restricted, hours, indoor, max_km, minute)| Filters {
            // From a Monday: weekday and overnight schedules matter.
            open_at: Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
                + Duration::minutes(minute),
            readiness: [
                ReadinessFilter::NotKnownBad,
                ReadinessFilter::ReadyOrDegraded,
                ReadinessFilter::Ready,
            ][usize::from(r)],
            include_restricted: restricted,
            hours: [
                HoursPolicy::OpenOrUnknown,
                HoursPolicy::OpenOnly,
                HoursPolicy::Any,
            ][usize::from(hours)],
            indoor: [None, Some(true), Some(false)][usize::from(indoor)],
            max_distance_m: max_km.map(|km| km * 1000.0),
        })
}

fn brute(
    entries: &HashMap<i64, AedEntry>,
    at: LatLon,
    k: usize,
    f: &Filters,
    w: &WalkModel,
) -> Vec<aednet_geoindex::Nearest> {
    let mut all: Vec<_> = entries
        .values()
        .filter(|e| f.max_distance_m.is_none_or(|m| at.distance_m(&e.pos) <= m))
        .filter_map(|e| evaluate(e, at, at.distance_m(&e.pos), f, w))
        .collect();
    all.sort_by_key(rank);
    all.truncate(k);
    all
}

fn assert_same(
    got: &[aednet_geoindex::Nearest],
    want: &[aednet_geoindex::Nearest],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    for (g, b) in got.iter().zip(want) {
        // Chord vs haversine rounding: a millimetre, a microsecond.
        prop_assert!(
            (g.distance_m - b.distance_m).abs() < 1e-3,
            "{} vs {}",
            g.distance_m,
            b.distance_m
        );
        prop_assert!(
            (g.round_trip_s - b.round_trip_s).abs() < 1e-3,
            "{} vs {}",
            g.round_trip_s,
            b.round_trip_s
        );
    }
    // Ids agree except where two AEDs tie on time.
    if want
        .windows(2)
        .all(|w| w[1].round_trip_s - w[0].round_trip_s > 1e-3)
    {
        let ids: Vec<i64> = got.iter().map(|n| n.id).collect();
        let want_ids: Vec<i64> = want.iter().map(|n| n.id).collect();
        prop_assert_eq!(ids, want_ids);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn filtered_time_ranked_nearest_matches_brute_force(
        pts in prop::collection::vec((point(), any::<u16>()), 1..300),
        q in point(),
        k in 1usize..12,
        f in filters(),
        walk_speed in 0.8..2.5f64,
    ) {
        let mut schedules = Schedules::default();
        let entries: HashMap<i64, AedEntry> =
            pts.iter().enumerate().map(|(i, (p, c))| (i as i64, entry(i as i64, *p, *c, &mut schedules))).collect();
        let walk = WalkModel { speed_mps: walk_speed, ..WalkModel::default() };
        let at = LatLon::new(q.0, q.1).unwrap();
        let index = AedIndex::build(entries.values().cloned().collect());
        assert_same(&index.nearest(at, k, &f, &walk), &brute(&entries, at, k, &f, &walk))?;
    }

    /// Updates one by one (as store events arrive) leave the index answering like a fresh
    /// brute force over the same final set.
    #[test]
    fn upserts_status_changes_and_removals_match_brute_force(
        initial in prop::collection::vec((point(), any::<u16>()), 0..100),
        ops in prop::collection::vec((0u8..3, 0i64..150, point(), any::<u16>()), 1..150),
        q in point(),
        f in filters(),
    ) {
        let mut schedules = Schedules::default();
        let mut entries: HashMap<i64, AedEntry> =
            initial.iter().enumerate().map(|(i, (p, c))| (i as i64, entry(i as i64, *p, *c, &mut schedules))).collect();
        let mut index = AedIndex::build(entries.values().cloned().collect());
        for (op, id, p, c) in ops {
            match op {
                0 => {
                    let e = entry(id, p, c, &mut schedules);
                    entries.insert(id, e.clone());
                    index.upsert(e);
                }
                1 => {
                    let status = ReadinessStatus::ALL[usize::from(c) % ReadinessStatus::ALL.len()];
                    let known = entries.get_mut(&id).map(|e| e.status = status).is_some();
                    prop_assert_eq!(index.set_status(id, status), known);
                }
                _ => {
                    prop_assert_eq!(index.remove(id).is_some(), entries.remove(&id).is_some());
                }
            }
        }
        prop_assert_eq!(index.len(), entries.len());
        let walk = WalkModel::default();
        let at = LatLon::new(q.0, q.1).unwrap();
        assert_same(&index.nearest(at, 10, &f, &walk), &brute(&entries, at, 10, &f, &walk))?;
        // The H3 cell map follows the same updates.
        let mut in_disk = index.in_disk(at, 2);
        in_disk.sort_unstable();
        let disk: Vec<_> = h3o::LatLng::new(at.lat, at.lon).unwrap().to_cell(CELL_RES).grid_disk::<Vec<_>>(2);
        let mut want: Vec<i64> = entries
            .values()
            .filter(|e| disk.contains(&h3o::LatLng::new(e.pos.lat, e.pos.lon).unwrap().to_cell(CELL_RES)))
            .map(|e| e.id)
            .collect();
        want.sort_unstable();
        prop_assert_eq!(in_disk, want);
    }

    /// Rescuers moving, reporting out of order, leaving and expiring; radius queries against
    /// brute force over the fixes that should be held.
    #[test]
    fn rescuer_moves_and_expiry_match_brute_force(
        ops in prop::collection::vec((0u8..4, 0i64..60, point(), 0i64..1800), 1..300),
        q in point(),
        radius_km in 0.1..5000.0f64,
        limit in 1usize..20,
    ) {
        let t0: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap();
        let ttl = Duration::minutes(15);
        let mut idx = RescuerIndex::new(ttl);
        let mut held: HashMap<i64, (LatLon, DateTime<Utc>)> = HashMap::new();
        let mut now = t0;
        for (op, id, p, secs) in ops {
            let pos = LatLon::new(p.0, p.1).unwrap();
            match op {
                0 | 1 => {
                    let seen = t0 + Duration::seconds(secs);
                    let newer = held.get(&id).is_none_or(|(_, s)| *s <= seen);
                    prop_assert_eq!(idx.upsert(id, pos, seen), newer);
                    if newer {
                        held.insert(id, (pos, seen));
                    }
                }
                2 => {
                    prop_assert_eq!(idx.remove(id).is_some(), held.remove(&id).is_some());
                }
                _ => {
                    now = now.max(t0 + Duration::seconds(secs) + ttl / 2);
                    let mut dropped = idx.expire(now);
                    dropped.sort_unstable();
                    let mut want: Vec<i64> = held.iter().filter(|(_, (_, s))| *s < now - ttl).map(|(i, _)| *i).collect();
                    want.sort_unstable();
                    held.retain(|_, (_, s)| *s >= now - ttl);
                    prop_assert_eq!(dropped, want);
                }
            }
        }
        prop_assert_eq!(idx.len(), held.len());
        let at = LatLon::new(q.0, q.1).unwrap();
        let radius = radius_km * 1000.0;
        let got = idx.within(at, radius, limit, now, |id| id % 5 != 0);
        let mut want: Vec<(f64, i64)> = held
            .iter()
            .filter(|(id, (p, s))| **id % 5 != 0 && *s >= now - ttl && at.distance_m(p) <= radius)
            .map(|(id, (p, _))| (at.distance_m(p), *id))
            .collect();
        want.sort_by(|a, b| a.0.total_cmp(&b.0));
        want.truncate(limit);
        prop_assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            prop_assert!((g.distance_m - w.0).abs() < 1e-3);
        }
        for (id, (p, s)) in &held {
            let fix = idx.get(*id).unwrap();
            prop_assert_eq!((fix.pos, fix.seen_at), (*p, *s));
        }
    }
}

#[test]
fn two_aeds_at_one_point_are_removed_individually() {
    let mut schedules = Schedules::default();
    let p = (28.97, 118.87);
    let mut idx = AedIndex::build(vec![
        entry(1, p, 0, &mut schedules),
        entry(2, p, 0, &mut schedules),
    ]);
    assert!(idx.remove(2).is_some());
    assert_eq!(idx.len(), 1);
    assert_eq!(idx.get(1).map(|e| e.id), Some(1));
    assert!(idx.get(2).is_none());
    assert_eq!(idx.in_disk(LatLon::new(p.0, p.1).unwrap(), 0), vec![1]);
}

#[test]
fn a_locked_cabinet_upstairs_ranks_behind_a_slightly_farther_open_one() {
    let mut schedules = Schedules::default();
    let at = LatLon::new(28.9700, 118.8700).unwrap();
    let mut near = entry(1, (28.9710, 118.8700), 0, &mut schedules); // ~111 m
    near.access = Access::Yes;
    near.status = ReadinessStatus::Ready;
    near.indoor = Some(true);
    near.floor = Some(4.0);
    near.cabinet_locked = true;
    near.schedule = schedules.get(Some("24/7"), chrono_tz::UTC, near.pos);
    let mut far = near.clone();
    far.id = 2;
    far.pos = LatLon::new(28.9700, 118.8715).unwrap(); // ~146 m
    far.indoor = Some(false);
    far.floor = None;
    far.cabinet_locked = false;
    let idx = AedIndex::build(vec![near, far]);
    let f = Filters::caller_defaults(Utc::now());
    let got = idx.nearest(at, 2, &f, &WalkModel::default());
    assert_eq!(
        got.iter().map(|n| n.id).collect::<Vec<_>>(),
        vec![2, 1],
        "{got:#?}"
    );
    assert!(got[0].distance_m > got[1].distance_m);
    let _ = StationKind::BoaiStation;
}
