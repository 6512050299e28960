//! Opening hours in OSM `opening_hours` syntax, evaluated in the AED's own time zone with the
//! public holidays of the country it stands in (for `PH off` and friends).
//!
//! Real data is messy: a value that does not parse is kept verbatim, flagged, and evaluates to
//! [`HoursState::Unknown`] — never an error and never "open".

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use opening_hours::localization::{Coordinates, Country, TzLocation};
use opening_hours::{Context, OpeningHours, RuleKind};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::geo_util::LatLon;

/// Whether a place is open at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoursState {
    Open,
    Closed,
    /// No hours recorded, hours that do not parse, or a rule that says "unknown".
    Unknown,
}

/// A compiled opening-hours value: parse once, evaluate many times.
#[derive(Clone)]
pub struct Hours {
    raw: Option<String>,
    compiled: Option<OpeningHours<TzLocation<Tz>>>,
    tz: Tz,
}

impl std::fmt::Debug for Hours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hours")
            .field("raw", &self.raw)
            .field("valid", &self.is_valid())
            .field("tz", &self.tz)
            .finish()
    }
}

/// Checks syntax only (no time zone or holidays needed): what importers and the API use to
/// flag malformed values.
pub fn parses(raw: &str) -> bool {
    raw.parse::<OpeningHours>().is_ok()
}

/// The country whose public holidays apply at a position, if the boundary data knows it.
pub fn country_at(pos: LatLon) -> Option<Country> {
    Coordinates::new(pos.lat, pos.lon).and_then(Country::try_from_coords)
}

/// The IANA time zone at a position (from the maintained tz boundary data shipped with
/// `tzf-rs`); UTC for open sea.
pub fn time_zone_at(pos: LatLon) -> Tz {
    match Coordinates::new(pos.lat, pos.lon) {
        Some(c) => *TzLocation::from_coords(c).get_timezone(),
        None => Tz::UTC,
    }
}

impl Hours {
    /// Compiles `raw` for a place at `pos` in zone `tz`. `None` or blank means "not recorded".
    pub fn compile(raw: Option<&str>, tz: Tz, pos: LatLon) -> Self {
        let raw = raw
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let compiled = raw
            .as_deref()
            .and_then(|r| r.parse::<OpeningHours>().ok())
            .map(|oh| {
                let coords = Coordinates::new(pos.lat, pos.lon);
                let mut locale = TzLocation::new(tz);
                if let Some(c) = coords {
                    locale = locale.with_coords(c);
                }
                let holidays = coords
                    .and_then(Country::try_from_coords)
                    .map(Country::holidays)
                    .unwrap_or_default();
                oh.with_context(
                    Context::default()
                        .with_holidays(holidays)
                        .with_locale(locale),
                )
            });
        Self { raw, compiled, tz }
    }

    pub fn raw(&self) -> Option<&str> {
        self.raw.as_deref()
    }

    /// True when hours are recorded and parse.
    pub fn is_valid(&self) -> bool {
        self.compiled.is_some()
    }

    /// True when the value is present but does not parse.
    pub fn is_malformed(&self) -> bool {
        self.raw.is_some() && self.compiled.is_none()
    }

    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// Open, closed or unknown at `at`.
    pub fn state(&self, at: DateTime<Utc>) -> HoursState {
        let Some(oh) = &self.compiled else {
            return HoursState::Unknown;
        };
        match oh.state(at.with_timezone(&self.tz)).0 {
            RuleKind::Open => HoursState::Open,
            RuleKind::Closed => HoursState::Closed,
            RuleKind::Unknown => HoursState::Unknown,
        }
    }

    /// The next instant the state changes after `at`, if any (never for `24/7`).
    pub fn next_change(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let oh = self.compiled.as_ref()?;
        oh.next_change(at.with_timezone(&self.tz))
            .map(|t| t.with_timezone(&Utc))
    }

    /// True for hours that are always open (`24/7` and equivalents), found by evaluation over a
    /// week rather than by string comparison.
    pub fn is_always_open(&self, at: DateTime<Utc>) -> bool {
        self.state(at) == HoursState::Open
            && self
                .next_change(at)
                .is_none_or(|t| t - at > chrono::Duration::days(366))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn vaduz() -> LatLon {
        LatLon::new(47.1410, 9.5209).unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn evaluates_in_the_places_time_zone() {
        let h = Hours::compile(Some("Mo-Fr 08:00-17:00"), chrono_tz::Europe::Vaduz, vaduz());
        assert!(h.is_valid());
        // Wednesday 2024-03-13: 07:30 UTC is 08:30 in Vaduz (CET, UTC+1): open.
        assert_eq!(h.state(utc(2024, 3, 13, 7, 30)), HoursState::Open);
        // 16:30 UTC is 17:30 local: closed, although 16:30 is inside the hours in UTC.
        assert_eq!(h.state(utc(2024, 3, 13, 16, 30)), HoursState::Closed);
        // Saturday.
        assert_eq!(h.state(utc(2024, 3, 16, 10, 0)), HoursState::Closed);
        // Next change from 07:30 UTC is 17:00 local = 16:00 UTC.
        assert_eq!(
            h.next_change(utc(2024, 3, 13, 7, 30)),
            Some(utc(2024, 3, 13, 16, 0))
        );
    }

    #[test]
    fn malformed_and_missing_hours_are_unknown_not_open() {
        let bad = Hours::compile(
            Some("Mo - Fr 7:00 - 17:00 bitte klingeln"),
            Tz::UTC,
            vaduz(),
        );
        assert!(bad.is_malformed());
        assert_eq!(bad.state(utc(2024, 3, 13, 10, 0)), HoursState::Unknown);
        let none = Hours::compile(Some("  "), Tz::UTC, vaduz());
        assert!(!none.is_malformed() && !none.is_valid());
        assert_eq!(none.state(utc(2024, 3, 13, 10, 0)), HoursState::Unknown);
    }

    #[test]
    fn always_open_is_detected_by_evaluation() {
        let at = utc(2024, 3, 13, 2, 0);
        assert!(Hours::compile(Some("24/7"), Tz::UTC, vaduz()).is_always_open(at));
        assert!(Hours::compile(Some("Mo-Su 00:00-24:00"), Tz::UTC, vaduz()).is_always_open(at));
        assert!(!Hours::compile(Some("Mo-Fr 08:00-17:00"), Tz::UTC, vaduz()).is_always_open(at));
    }

    #[test]
    fn public_holidays_follow_the_country() {
        // 2024-12-25 is a Wednesday and a public holiday in Liechtenstein.
        let h = Hours::compile(
            Some("Mo-Fr 08:00-17:00; PH off"),
            chrono_tz::Europe::Vaduz,
            vaduz(),
        );
        assert_eq!(h.state(utc(2024, 12, 25, 10, 0)), HoursState::Closed);
        assert_eq!(h.state(utc(2024, 12, 27, 10, 0)), HoursState::Open);
    }

    #[test]
    fn time_zone_comes_from_coordinates() {
        assert_eq!(time_zone_at(vaduz()), chrono_tz::Europe::Vaduz);
        let quzhou = LatLon::new(28.97, 118.87).unwrap();
        assert_eq!(time_zone_at(quzhou), chrono_tz::Asia::Shanghai);
    }
}
