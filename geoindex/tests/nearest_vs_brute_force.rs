//! The R-tree's filtered k-nearest against brute force over random data, including points near
//! the antimeridian and the poles, for every combination of filters.

use std::sync::Arc;

use aednet_core::aed::{Access, ReadinessStatus};
use aednet_core::hours::Hours;
use aednet_core::LatLon;
use aednet_geoindex::{AedEntry, AedIndex, Filters, ReadinessFilter};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;

const HOURS: &[Option<&str>] = &[Some("24/7"), Some("Mo-Fr 08:00-17:00"), Some("Mo-Su 22:00-06:00"), None, Some("nonsense")];

fn entry(id: i64, lat: f64, lon: f64, code: u8, hours: &[Arc<Hours>]) -> AedEntry {
    let pos = LatLon::new(lat, lon).unwrap();
    let access = Access::ALL[usize::from(code) % Access::ALL.len()];
    let status = ReadinessStatus::ALL[usize::from(code / 7) % ReadinessStatus::ALL.len()];
    AedEntry::new(id, pos, access, status, Some(code % 2 == 0), code % 3 == 0, hours[usize::from(code) % hours.len()].clone())
}

/// Latitude/longitude anywhere, or clustered where degree-based nearest goes wrong.
fn point() -> impl Strategy<Value = (f64, f64)> {
    prop_oneof![
        (-89.9..89.9f64, -180.0..180.0f64),
        (-5.0..5.0f64, prop_oneof![179.0..180.0f64, -180.0..-179.0f64]),
        (prop_oneof![85.0..89.99f64, -89.99..-85.0f64], -180.0..180.0f64),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn filtered_nearest_matches_brute_force(
        pts in prop::collection::vec((point(), any::<u8>()), 1..300),
        q in point(),
        k in 1usize..12,
        readiness in 0u8..3,
        include_restricted: bool,
        include_unknown_hours: bool,
        max_km in prop::option::of(1.0..3000.0f64),
        hour in 0u32..24,
    ) {
        let hours: Vec<Arc<Hours>> = HOURS
            .iter()
            .map(|h| Arc::new(Hours::compile(*h, chrono_tz::UTC, LatLon::new(0.0, 0.0).unwrap())))
            .collect();
        let entries: Vec<AedEntry> =
            pts.iter().enumerate().map(|(i, ((la, lo), c))| entry(i as i64, *la, *lo, *c, &hours)).collect();
        let filters = Filters {
            // A Wednesday: weekday schedules matter.
            open_at: Utc.with_ymd_and_hms(2026, 11, 25, hour, 30, 0).unwrap(),
            readiness: [ReadinessFilter::NotKnownBad, ReadinessFilter::ReadyOrDegraded, ReadinessFilter::Ready][usize::from(readiness)],
            include_restricted,
            include_unknown_hours,
            max_distance_m: max_km.map(|km| km * 1000.0),
        };
        let at = LatLon::new(q.0, q.1).unwrap();
        let index = AedIndex::build(entries.clone());
        let got = index.nearest(at, k, &filters);

        let mut brute: Vec<(f64, i64)> = entries
            .iter()
            .filter(|e| filters.admits(e))
            .map(|e| (at.distance_m(&e.pos), e.id))
            .filter(|(d, _)| filters.max_distance_m.is_none_or(|m| *d <= m))
            .collect();
        brute.sort_by(|a, b| a.0.total_cmp(&b.0));
        brute.truncate(k);

        // Distances agree to a millimetre (chord vs haversine rounding); ids agree except where
        // two AEDs are equally far.
        prop_assert_eq!(got.len(), brute.len());
        for (g, b) in got.iter().zip(&brute) {
            prop_assert!((g.distance_m - b.0).abs() < 1e-3, "{} vs {}", g.distance_m, b.0);
        }
        let strictly_ordered = brute.windows(2).all(|w| w[1].0 - w[0].0 > 1e-3);
        if strictly_ordered {
            let ids: Vec<i64> = got.iter().map(|n| n.id).collect();
            let want: Vec<i64> = brute.iter().map(|b| b.1).collect();
            prop_assert_eq!(ids, want);
        }
    }
}

#[test]
fn insert_and_remove_keep_the_index_consistent() {
    let h = Arc::new(Hours::compile(Some("24/7"), chrono_tz::UTC, LatLon::new(0.0, 0.0).unwrap()));
    let mut idx = AedIndex::default();
    let e = AedEntry::new(1, LatLon::new(28.97, 118.87).unwrap(), Access::Yes, ReadinessStatus::Ready, None, false, h.clone());
    idx.insert(e.clone());
    idx.insert(e.clone());
    assert_eq!(idx.len(), 1, "re-inserting the same id replaces it");
    let at = LatLon::new(28.971, 118.871).unwrap();
    let f = Filters::caller_defaults(Utc::now());
    assert_eq!(idx.nearest(at, 5, &f)[0].id, 1);
    assert!(idx.remove(1, e.pos).is_some());
    assert!(idx.is_empty());
    assert!(idx.nearest(at, 5, &f).is_empty());
}
