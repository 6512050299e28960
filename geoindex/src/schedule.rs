//! Compiled opening hours shared by many AEDs, with a per-schedule cache of the current span.
//!
//! Evaluating an `opening_hours` rule set costs microseconds; a nearest query may look at a
//! dozen AEDs. A schedule's state is constant between two changes, so each schedule remembers
//! the span `[from, until)` it last evaluated: a query at any instant inside it costs a read
//! lock and two comparisons. Callers all ask about "now", so the span is almost always warm.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aednet_core::hours::{Hours, HoursState};
use aednet_core::LatLon;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// State at an instant and the next instant it changes (`None`: never, or unknown hours).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleState {
    pub state: HoursState,
    pub next_change: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy)]
struct Span {
    from: i64,
    until: i64,
    state: HoursState,
}

#[derive(Debug)]
pub struct Schedule {
    hours: Hours,
    span: RwLock<Option<Span>>,
}

impl Schedule {
    pub fn new(hours: Hours) -> Self {
        Self {
            hours,
            span: RwLock::new(None),
        }
    }

    /// A schedule for "not recorded".
    pub fn unknown() -> Self {
        Self::new(Hours::compile(None, Tz::UTC, LatLon { lat: 0.0, lon: 0.0 }))
    }

    pub fn hours(&self) -> &Hours {
        &self.hours
    }

    /// True when hours are recorded and parse.
    pub fn is_known(&self) -> bool {
        self.hours.is_valid()
    }

    pub fn at(&self, t: DateTime<Utc>) -> ScheduleState {
        if !self.hours.is_valid() {
            return ScheduleState {
                state: HoursState::Unknown,
                next_change: None,
            };
        }
        let secs = t.timestamp();
        if let Some(s) = *self.span.read().unwrap_or_else(|p| p.into_inner()) {
            if s.from <= secs && secs < s.until {
                return ScheduleState {
                    state: s.state,
                    next_change: (s.until != i64::MAX)
                        .then(|| DateTime::from_timestamp(s.until, 0))
                        .flatten(),
                };
            }
        }
        // Rules have minute resolution: evaluate at the whole second so the span's start is
        // exactly the instant evaluated.
        let t = DateTime::from_timestamp(secs, 0).unwrap_or(t);
        let state = self.hours.state(t);
        let next_change = self.hours.next_change(t);
        let until = next_change.map_or(i64::MAX, |n| n.timestamp().max(secs + 1));
        *self.span.write().unwrap_or_else(|p| p.into_inner()) = Some(Span {
            from: secs,
            until,
            state,
        });
        ScheduleState { state, next_change }
    }
}

/// Interns schedules while building an index: 10^5 AEDs share a few hundred distinct
/// `opening_hours` values. The key is what the evaluation depends on: the text, the zone, and
/// only for rules that need them the country (public/school holidays) or the position
/// (sunrise/sunset, rounded to a degree).
/// Text, zone, degree cell (sun rules only), country (holiday rules only).
type ScheduleKey = (Arc<str>, Tz, Option<(i32, i32)>, Option<String>);

#[derive(Debug, Default)]
pub struct Schedules {
    map: HashMap<ScheduleKey, Arc<Schedule>>,
    unknown: Option<Arc<Schedule>>,
}

impl Schedules {
    pub fn get(&mut self, raw: Option<&str>, tz: Tz, pos: LatLon) -> Arc<Schedule> {
        let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
            return self
                .unknown
                .get_or_insert_with(|| Arc::new(Schedule::unknown()))
                .clone();
        };
        let by_sun = ["sunrise", "sunset", "dawn", "dusk"]
            .iter()
            .any(|w| raw.contains(w));
        let by_holiday = raw.contains("PH") || raw.contains("SH");
        let cell = by_sun.then(|| (pos.lat.round() as i32, pos.lon.round() as i32));
        let country = if by_holiday {
            aednet_core::hours::country_at(pos).map(|c| format!("{c:?}"))
        } else {
            None
        };
        let key = (Arc::<str>::from(raw), tz, cell, country);
        self.map
            .entry(key)
            .or_insert_with(|| Arc::new(Schedule::new(Hours::compile(Some(raw), tz, pos))))
            .clone()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cached_span_answers_like_a_fresh_evaluation() {
        let vaduz = LatLon::new(47.141, 9.5209).unwrap();
        let tz: Tz = "Europe/Vaduz".parse().unwrap();
        let mut set = Schedules::default();
        let s = set.get(Some("Mo-Fr 08:00-18:00; PH off"), tz, vaduz);
        let again = set.get(Some("Mo-Fr 08:00-18:00; PH off"), tz, vaduz);
        assert!(Arc::ptr_eq(&s, &again));
        let fresh = Hours::compile(Some("Mo-Fr 08:00-18:00; PH off"), tz, vaduz);
        // Walk a week in uneven steps, forwards and then backwards; the cache must never
        // answer differently from the rules.
        let start = Utc.with_ymd_and_hms(2026, 12, 21, 0, 0, 0).unwrap();
        let steps: Vec<i64> = (0..400).map(|i| i * 1511).collect();
        for secs in steps.iter().chain(steps.iter().rev()) {
            let t = start + chrono::Duration::seconds(*secs);
            let got = s.at(t);
            assert_eq!(got.state, fresh.state(t), "{t}");
            assert_eq!(got.next_change, fresh.next_change(t), "{t}");
        }
        // Christmas is a public holiday in Liechtenstein: closed all day despite a weekday.
        let xmas = Utc.with_ymd_and_hms(2026, 12, 25, 11, 0, 0).unwrap();
        assert_eq!(s.at(xmas).state, HoursState::Closed);
        assert_eq!(set.get(None, tz, vaduz).at(xmas).state, HoursState::Unknown);
        assert_eq!(
            set.get(Some("nonsense"), tz, vaduz).at(xmas).state,
            HoursState::Unknown
        );
    }
}
