//! Fuzzing with proptest (bounded cases, so CI stays fast): the device telemetry parser and
//! opening-hours handling take arbitrary input without panicking, and their errors say what
//! is wrong. `PROPTEST_CASES` raises the count for a longer run.

use aednet_core::telemetry::{Body, DeviceMessage, Health};
use aednet_core::{Hours, HoursState, LatLon};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;

const FIELDS: [&str; 19] = [
    "v",
    "seq",
    "ts",
    "type",
    "battery_pct",
    "temperature_c",
    "signal_dbm",
    "ok",
    "fault_codes",
    "state",
    "expiry",
    "open",
    "present",
    "event",
    "lat",
    "lon",
    "version",
    "boot",
    "x",
];

/// A JSON value of the kinds a device (or an attacker) might put in a field.
fn value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON has no NaN", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop::sample::select(Body::KINDS.to_vec()).prop_map(|k| json!(k)),
        Just(json!("2026-12-01T19:00:00Z")),
        Just(json!("2026-13-45")),
        ".{0,12}".prop_map(|s| json!(s)),
        prop::collection::vec(".{0,4}", 0..3).prop_map(|v| json!(v)),
        Just(json!({"nested": [1, 2, {"deep": true}]})),
    ]
}

/// Objects with the protocol's fields (and some others), valid or not.
fn frame() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::btree_map(prop::sample::select(FIELDS.to_vec()), value(), 0..8).prop_map(
        |m| {
            let obj: serde_json::Map<String, serde_json::Value> =
                m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            serde_json::to_vec(&obj).unwrap()
        },
    )
}

fn check_parse(bytes: &[u8]) {
    match DeviceMessage::parse(bytes) {
        Ok(m) => {
            // What parses folds into readiness without trouble.
            let mut h = Health::default();
            h.apply(&m.body);
            let _ = h.derive();
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.trim().is_empty(), "an error says what is wrong");
            assert!(msg.len() < 4096, "error messages stay short: {}", msg.len());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn telemetry_parser_takes_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_parse(&bytes);
    }

    #[test]
    fn telemetry_parser_takes_arbitrary_objects(bytes in frame()) {
        check_parse(&bytes);
    }

    #[test]
    fn telemetry_parser_takes_truncated_valid_frames(cut in 0usize..120) {
        let full = br#"{"v":1,"seq":7,"ts":"2026-12-01T19:00:00Z","type":"self_test","ok":false,"fault_codes":["E12"]}"#;
        check_parse(&full[..cut.min(full.len())]);
    }
}

/// Characters opening_hours values are made of, so generated values get deep into the parser.
const HOURS_PIECES: [&str; 32] = [
    "Mo", "Tu", "We", "Th", "Fr", "Sa", "Su", "PH", "SH", "-", ",", ";", ":", " ", "||", "off",
    "open", "closed", "24/7", "08:00", "18:00", "24:00", "sunrise", "sunset", "+", "Jan", "Dec",
    "week", "/", "[1]", "\"", "00",
];

fn check_hours(raw: &str) {
    let pos = LatLon::new(28.97, 118.87).unwrap();
    let h = Hours::compile(Some(raw), chrono_tz::Asia::Shanghai, pos);
    if raw.trim().is_empty() {
        assert!(!h.is_valid() && !h.is_malformed());
        return;
    }
    // Either it parses, or it is kept and flagged: never lost, never a crash.
    assert_eq!(h.raw(), Some(raw.trim()));
    assert_ne!(h.is_valid(), h.is_malformed());
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 0).unwrap();
    let state = h.state(at);
    if h.is_malformed() {
        assert_eq!(state, HoursState::Unknown, "malformed hours are unknown");
    }
    if let Some(next) = h.next_change(at) {
        assert!(next > at);
    }
    let _ = h.is_always_open(at);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn opening_hours_take_arbitrary_strings(raw in ".{0,40}") {
        check_hours(&raw);
    }

    #[test]
    fn opening_hours_take_osm_like_strings(pieces in prop::collection::vec(prop::sample::select(HOURS_PIECES.to_vec()), 0..12)) {
        check_hours(&pieces.concat());
    }
}
