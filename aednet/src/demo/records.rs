//! The registry records of the demo city — AEDs, aid stations — with realistic sites,
//! opening hours, readiness and cabinets, placed beside the streets of its settlements.

use aednet_core::aed::{Access, AedData, AedInput, ReadinessStatus};
use aednet_core::district::DistrictLocator;
use aednet_core::station::{ScenicRating, StationData, StationInput, StationKind};
use aednet_core::{LatLon, Secret, Tags};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::geo::{self, Xy};
use super::spec::{
    Kind, Site, DISTRICTS, MALFORMED_HOURS, MODELS, OPERATORS, ROADS, SOURCE, SURNAMES,
};
use super::towns::Town;

pub(super) fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.gen_range(0..items.len())]
}

pub(super) struct Gen {
    pub rng: ChaCha8Rng,
    pub now: DateTime<Utc>,
    pub locator: DistrictLocator,
    pub towns: Vec<Town>,
    /// Per town, its street segments (metres) with the street's name.
    pub segments: Vec<Vec<(Xy, Xy, String)>>,
    /// Where the last [`Gen::point`] fell: its town, village or (in a seat) subdistrict, and
    /// the street it stands on (empty if none).
    pub last_place: String,
    pub last_street: String,
}

impl Gen {
    /// A point beside a street in district `di`: the seat's streets most often (its centre
    /// more than its edges), then the towns', a few in villages; a building's depth off the
    /// kerb. Always inside the district's boundary.
    pub fn point(&mut self, di: usize) -> (f64, f64) {
        let here: Vec<(usize, f64)> = self
            .towns
            .iter()
            .enumerate()
            .filter(|(k, t)| t.district == di && !self.segments[*k].is_empty())
            .map(|(k, t)| {
                let w = match (t.seat, t.kind) {
                    (true, _) => 65.0,
                    (_, Kind::Village) => 1.0,
                    _ => 12.0,
                };
                (k, w)
            })
            .collect();
        let total: f64 = here.iter().map(|h| h.1).sum();
        for _ in 0..500 {
            let mut w = self.rng.gen_range(0.0..total.max(f64::MIN_POSITIVE));
            let Some(&(k, _)) = here.iter().find(|h| {
                w -= h.1;
                w < 0.0
            }) else {
                continue;
            };
            let (t, segs) = (&self.towns[k], &self.segments[k]);
            let (a, b, street) = &segs[self.rng.gen_range(0..segs.len())];
            let (a, b) = (*a, *b);
            let u: f64 = self.rng.gen();
            let p = (a.0 + u * (b.0 - a.0), a.1 + u * (b.1 - a.1));
            let d = geo::dist(p, t.center) / t.radius;
            if !self.rng.gen_bool((-(d * d) * 1.5).exp().max(0.08)) {
                continue;
            }
            let len = geo::dist(a, b).max(1.0);
            let side = if self.rng.gen_bool(0.5) { 1.0 } else { -1.0 };
            let off = side * self.rng.gen_range(12.0..30.0);
            let q = (p.0 - off * (b.1 - a.1) / len, p.1 + off * (b.0 - a.0) / len);
            let ll = geo::to_ll(q);
            if self.locator.locate(ll) == Some(di as i64) {
                self.last_place = t
                    .suburbs
                    .iter()
                    .min_by(|a, b| geo::dist(a.2, q).total_cmp(&geo::dist(b.2, q)))
                    .map_or_else(|| t.name.clone(), |s| s.0.clone());
                self.last_street = street.clone();
                return (ll.lat, ll.lon);
            }
        }
        self.last_place = DISTRICTS[di].name.to_string();
        self.last_street.clear();
        self.anywhere(di)
    }

    /// Anywhere in the district (a district without streets of its own).
    fn anywhere(&mut self, di: usize) -> (f64, f64) {
        let (mut lo, mut hi) = ((f64::MAX, f64::MAX), (f64::MIN, f64::MIN));
        for &(x, y) in DISTRICTS[di].ring {
            lo = (lo.0.min(x), lo.1.min(y));
            hi = (hi.0.max(x), hi.1.max(y));
        }
        loop {
            let (lat, lon) = (
                self.rng.gen_range(lo.1..hi.1),
                self.rng.gen_range(lo.0..hi.0),
            );
            if let Ok(p) = LatLon::new(lat, lon) {
                if self.locator.locate(p) == Some(di as i64) {
                    return (lat, lon);
                }
            }
        }
    }

    /// The street of the last point, or `road` when it stood on none.
    pub fn street_or(&self, road: &str) -> String {
        if self.last_street.is_empty() {
            road.to_string()
        } else {
            self.last_street.clone()
        }
    }

    fn expiry(&mut self) -> NaiveDate {
        // Mostly years ahead; a few expiring this month or already expired.
        let days = if self.rng.gen_bool(0.1) {
            self.rng.gen_range(-20..30)
        } else {
            self.rng.gen_range(30..1200)
        };
        (self.now + Duration::days(days)).date_naive()
    }

    pub fn aed(
        &mut self,
        di: usize,
        n: usize,
        site: &Site,
        name: String,
        at: (f64, f64),
    ) -> AedData {
        let spec = &DISTRICTS[di];
        let hours = if self.rng.gen_bool(0.01) || n == 7 && di < MALFORMED_HOURS.len() {
            pick(&mut self.rng, MALFORMED_HOURS).to_string()
        } else {
            site.hours.to_string()
        };
        let access = if self.rng.gen_bool(site.restricted) {
            if self.rng.gen_bool(0.5) {
                Access::Customers
            } else {
                Access::Private
            }
        } else {
            Access::Yes
        };
        let roll: f64 = self.rng.gen();
        let (status, reason) = match roll {
            r if r < 0.40 => (ReadinessStatus::Ready, Some("自检通过 self-test passed")),
            r if r < 0.45 => (
                ReadinessStatus::Degraded,
                Some("电池电量低 (18%) battery low"),
            ),
            r if r < 0.48 => (ReadinessStatus::Fault, Some("自检失败 E12 self-test fault")),
            r if r < 0.51 => (
                ReadinessStatus::Offline,
                Some("超过30分钟无心跳 no heartbeat for 30 min"),
            ),
            r if r < 0.52 => (
                ReadinessStatus::InUse,
                Some("柜门打开，AED已取出 removed from cabinet"),
            ),
            _ => (ReadinessStatus::Unknown, None),
        };
        let connected = status != ReadinessStatus::Unknown;
        let locked = !site.indoor && self.rng.gen_bool(0.4);
        let mut tags = Tags::new();
        tags.insert("emergency".into(), "defibrillator".into());
        // Drawn even when the AED stands on a named street, so the draws after it stay put.
        let road = *pick(&mut self.rng, ROADS);
        let input = AedInput {
            source: Some(SOURCE.into()),
            external_ref: Some(format!("demo-aed-{di}-{n:04}")),
            lat: at.0,
            lon: at.1,
            name: Some(name),
            address: Some(format!(
                "浙江省衢州市{}{}{}号",
                spec.name,
                self.street_or(road),
                self.rng.gen_range(1..400)
            )),
            operator: Some(pick(&mut self.rng, OPERATORS).to_string()),
            phone: Some(format!("0570-{}", self.rng.gen_range(3_000_000..8_999_999))),
            indoor: Some(site.indoor),
            // OSM `level`: 0 is the ground floor (一楼 in Chinese usage).
            level: site.indoor.then(|| "0".to_string()),
            location_description: Some(pick(&mut self.rng, site.where_).to_string()),
            access: Some(access),
            opening_hours: Some(hours),
            time_zone: Some(chrono_tz::Asia::Shanghai),
            cabinet_locked: Some(locked),
            cabinet_code: locked
                .then(|| Secret::new(format!("{:04}", self.rng.gen_range(0..10_000)))),
            device_model: Some(pick(&mut self.rng, MODELS).to_string()),
            device_serial: connected
                .then(|| format!("SN{:08}", self.rng.gen_range(0..100_000_000))),
            pads_expiry: Some(self.expiry()),
            battery_expiry: Some(self.expiry()),
            readiness_status: Some(status),
            readiness_reason: reason.map(str::to_string),
            district_id: None,
            tags,
        };
        let mut data = input.validate(self.now).expect("demo AEDs are valid");
        // Readiness changed at some point in the last days, not all at generation time.
        data.readiness.since = self.now - Duration::minutes(self.rng.gen_range(5..7 * 24 * 60));
        data
    }

    pub fn station(
        &mut self,
        kind: StationKind,
        name: String,
        at: (f64, f64),
        hours: &str,
        rating: Option<ScenicRating>,
    ) -> StationData {
        let equipment: &[&str] = match kind {
            StationKind::BusKit => &["AED", "急救包", "止血带", "三角巾"],
            StationKind::ScenicAidStation => &["AED", "担架", "急救箱", "轮椅", "氧气袋"],
            _ => &["AED", "急救箱", "轮椅"],
        };
        StationInput {
            source: Some(SOURCE.into()),
            external_ref: Some(format!(
                "demo-station-{}-{:.4}-{:.4}",
                kind.as_str(),
                at.0,
                at.1
            )),
            kind,
            name,
            scenic_rating: rating,
            lat: at.0,
            lon: at.1,
            address: None,
            staffed_hours: Some(hours.to_string()),
            time_zone: Some(chrono_tz::Asia::Shanghai),
            contact_name: Some(format!("{}站长", pick(&mut self.rng, SURNAMES))),
            contact_phone: Some(format!("0570-{}", self.rng.gen_range(3_000_000..8_999_999))),
            equipment: equipment.iter().map(|s| s.to_string()).collect(),
            aed_ids: vec![],
            district_id: None,
            tags: Tags::new(),
        }
        .validate(self.now)
        .expect("demo stations are valid")
    }
}
