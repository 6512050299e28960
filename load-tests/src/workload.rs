//! The synthetic network and the query set shared by every target.

use aednet_core::aed::{Access, AedData, AedInput, ReadinessStatus};
use aednet_core::LatLon;
use chrono::{DateTime, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Hours patterns, by code. The weekly open mask of each is what PostGIS filters on.
pub const HOURS: [Option<&str>; 3] = [Some("24/7"), Some("Mo-Fr 08:00-18:00"), None];

/// Statuses a caller is never sent to (aednet's default readiness filter).
pub const BAD: [ReadinessStatus; 5] = [
    ReadinessStatus::Fault,
    ReadinessStatus::Offline,
    ReadinessStatus::InUse,
    ReadinessStatus::CabinetOpen,
    ReadinessStatus::Retired,
];

/// Every target searches within this straight-line radius.
pub const MAX_DISTANCE_M: f64 = 10_000.0;

#[derive(Debug, Clone, Copy)]
pub struct SynthAed {
    pub id: i64,
    pub pos: LatLon,
    pub status: ReadinessStatus,
    pub access: Access,
    pub hours: u8,
}

impl SynthAed {
    /// Hour-of-week mask (Monday 00:00 local = bit 0) in which the AED is open; unknown hours
    /// count as open (the caller default "open or unknown").
    pub fn open_mask(&self) -> [bool; 168] {
        let mut m = [true; 168];
        if self.hours == 1 {
            for (h, open) in m.iter_mut().enumerate() {
                let (day, hour) = (h / 24, h % 24);
                *open = day < 5 && (8..18).contains(&hour);
            }
        }
        m
    }

    pub fn admitted(&self, how: usize) -> bool {
        !BAD.contains(&self.status)
            && !matches!(
                self.access,
                Access::Customers | Access::Private | Access::No
            )
            && self.open_mask()[how]
    }
}

/// A square region around Quzhou sized for ~25 AEDs per km².
pub fn region(n: usize) -> (f64, f64, f64, f64) {
    let side_km = (n as f64 / 25.0).sqrt().max(1.0);
    let dlat = side_km / 111.0;
    let dlon = dlat / (28.5f64.to_radians().cos());
    (28.0, 118.0, dlat, dlon)
}

fn point(rng: &mut ChaCha8Rng, n: usize) -> LatLon {
    let (lat0, lon0, dlat, dlon) = region(n);
    LatLon {
        lat: lat0 + rng.gen_range(0.0..dlat),
        lon: lon0 + rng.gen_range(0.0..dlon),
    }
}

/// ~15 % known bad, ~15 % office hours (closed at night), ~10 % customers only.
pub fn aeds(n: usize, seed: u64) -> Vec<SynthAed> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (1..=n as i64)
        .map(|id| {
            let r: f64 = rng.gen();
            let status = match r {
                r if r < 0.05 => ReadinessStatus::Fault,
                r if r < 0.10 => ReadinessStatus::Offline,
                r if r < 0.15 => ReadinessStatus::InUse,
                r if r < 0.50 => ReadinessStatus::Ready,
                _ => ReadinessStatus::Unknown,
            };
            let h: f64 = rng.gen();
            SynthAed {
                id,
                pos: point(&mut rng, n),
                status,
                access: if rng.gen_bool(0.9) {
                    Access::Yes
                } else {
                    Access::Customers
                },
                hours: if h < 0.15 {
                    1
                } else if h < 0.6 {
                    0
                } else {
                    2
                },
            }
        })
        .collect()
}

/// A synthetic street grid over [`region`]: streets every `block_m` metres each way, a shape
/// point in the middle of every block side (as OSM ways have), and a tenth of the block sides
/// missing (courtyards, rails, water), so that walks detour as real ones do.
pub fn street_grid(n: usize, seed: u64, block_m: f64) -> aednet_routing::Graph {
    use aednet_routing::Edge;
    let (lat0, lon0, dlat, dlon) = region(n);
    let ky = 111_195.0;
    let kx = ky * (lat0 + dlat / 2.0).to_radians().cos();
    let rows = ((dlat * ky) / block_m).ceil() as u32 + 1;
    let cols = ((dlon * kx) / block_m).ceil() as u32 + 1;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x57ee7);
    let mut coords: Vec<(i32, i32)> = Vec::new();
    let e7 = |lat: f64, lon: f64| ((lat * 1e7).round() as i32, (lon * 1e7).round() as i32);
    let corner = |r: u32, c: u32| {
        (
            lat0 + f64::from(r) * block_m / ky,
            lon0 + f64::from(c) * block_m / kx,
        )
    };
    for r in 0..rows {
        for c in 0..cols {
            let (lat, lon) = corner(r, c);
            coords.push(e7(lat, lon));
        }
    }
    let id = |r: u32, c: u32| r * cols + c;
    let half_cm = (block_m * 50.0).round() as u32;
    let mut edges = Vec::new();
    let mut side = |a: u32, b: u32, coords: &mut Vec<(i32, i32)>, rng: &mut ChaCha8Rng| {
        if rng.gen_bool(0.1) {
            return;
        }
        let (pa, pb) = (coords[a as usize], coords[b as usize]);
        let m = coords.len() as u32;
        // In i64: two longitudes of 118° in 1e-7 degrees overflow an i32 sum.
        let mid = |x: i32, y: i32| ((i64::from(x) + i64::from(y)) / 2) as i32;
        coords.push((mid(pa.0, pb.0), mid(pa.1, pb.1)));
        edges.push(Edge {
            a,
            b: m,
            cost_cm: half_cm,
        });
        edges.push(Edge {
            a: m,
            b,
            cost_cm: half_cm,
        });
    };
    for r in 0..rows {
        for c in 0..cols {
            if c + 1 < cols {
                side(id(r, c), id(r, c + 1), &mut coords, &mut rng);
            }
            if r + 1 < rows {
                side(id(r, c), id(r + 1, c), &mut coords, &mut rng);
            }
        }
    }
    aednet_routing::Graph::from_parts(coords, edges)
}

pub fn queries(n: usize, seed: u64, count: usize) -> Vec<LatLon> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    (0..count).map(|_| point(&mut rng, n)).collect()
}

/// Wednesday 02:00 in Asia/Shanghai: office-hours AEDs are closed.
pub fn query_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 18, 0, 0).unwrap()
}

/// Hour of week of [`query_time`] in Asia/Shanghai (Monday 00:00 = 0).
pub fn query_hour_of_week() -> usize {
    2 * 24 + 2
}

/// As aednet stores them (outdoor, unlocked, no floor: the time ranking equals distance, as
/// the peers rank).
pub fn aed_data(a: &SynthAed, now: DateTime<Utc>) -> AedData {
    let mut d = AedInput {
        lat: a.pos.lat,
        lon: a.pos.lon,
        external_ref: Some(format!("load-{}", a.id)),
        source: Some("load-test".into()),
        name: Some(format!("AED {}", a.id)),
        time_zone: Some(chrono_tz::Asia::Shanghai),
        opening_hours: HOURS[usize::from(a.hours)].map(str::to_string),
        ..Default::default()
    }
    .validate(now)
    .expect("synthetic AED is valid");
    d.access = a.access;
    d.readiness.status = a.status;
    d
}
