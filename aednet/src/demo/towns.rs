//! Where people live in the demo city: the settlements (each district's seat, its towns, and
//! villages scattered in the hills) with irregular outlines, and the rivers running through
//! them. Streets, population and AED sites are all laid out from this.

use aednet_core::district::DistrictLocator;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::geo::{dist, dist_to_segment, mix, noise, to_ll, to_xy, Xy};
use super::spec::{Kind, DISTRICTS, RIVERS, VILLAGE_A, VILLAGE_B};

/// Villages per district.
const VILLAGES: usize = 8;

#[derive(Debug, Clone)]
pub struct Town {
    pub name: String,
    pub en: String,
    pub kind: Kind,
    /// The district's seat (the first settlement of its district).
    pub seat: bool,
    /// Index into the districts.
    pub district: usize,
    pub center: Xy,
    /// Mean radius of the built-up area, metres.
    pub radius: f64,
    /// Street grid orientation, radians.
    pub angle: f64,
    key: u64,
    /// Subdistrict labels inside a seat: name, English name, position.
    pub suburbs: Vec<(String, String, Xy)>,
}

impl Town {
    /// The outline's radius towards `theta`: lobes of a few harmonics, 0.65–1.35 × the mean.
    pub fn radius_at(&self, theta: f64) -> f64 {
        let p =
            |k: u64| (mix(self.key ^ k) >> 11) as f64 / (1u64 << 53) as f64 * std::f64::consts::TAU;
        self.radius
            * (1.0
                + 0.18 * (2.0 * theta + p(1)).sin()
                + 0.11 * (3.0 * theta + p(2)).sin()
                + 0.06 * (5.0 * theta + p(3)).sin())
    }

    pub fn inside(&self, p: Xy) -> bool {
        let (dx, dy) = (p.0 - self.center.0, p.1 - self.center.1);
        dx.hypot(dy) < self.radius_at(dy.atan2(dx))
    }

    /// The built-up area's outline, closed (first = last).
    pub fn outline(&self) -> Vec<Xy> {
        let n = 36;
        let mut ring: Vec<Xy> = (0..n)
            .map(|k| {
                let t = f64::from(k) / f64::from(n) * std::f64::consts::TAU;
                let r = self.radius_at(t);
                (self.center.0 + r * t.cos(), self.center.1 + r * t.sin())
            })
            .collect();
        ring.push(ring[0]);
        ring
    }

    /// The grid spacing of its streets, metres.
    pub fn block(&self) -> f64 {
        match self.kind {
            Kind::City => 200.0,
            Kind::Town => 160.0,
            Kind::Village => 120.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct River {
    pub name: &'static str,
    pub en: &'static str,
    pub width: f64,
    /// Centre line, upstream first.
    pub line: Vec<Xy>,
}

impl River {
    pub fn distance(&self, p: Xy) -> f64 {
        self.line
            .windows(2)
            .map(|w| dist_to_segment(p, w[0], w[1]))
            .fold(f64::MAX, f64::min)
    }
}

/// The rivers, densified every ~400 m with meanders that fade out at the given points (so
/// they pass where the table says: beside the seats, through the confluence).
pub fn rivers() -> Vec<River> {
    RIVERS
        .iter()
        .enumerate()
        .map(|(ri, r)| {
            let pts: Vec<Xy> = r
                .through
                .iter()
                .map(|&(lat, lon)| to_xy(lat, lon))
                .collect();
            let mut line = vec![pts[0]];
            for (k, w) in pts.windows(2).enumerate() {
                let (a, b) = (w[0], w[1]);
                let len = dist(a, b);
                let n = (len / 400.0).ceil().max(1.0) as usize;
                let (nx, ny) = (-(b.1 - a.1) / len, (b.0 - a.0) / len);
                let amp = (len * 0.06).min(600.0);
                for i in 1..=n {
                    let t = i as f64 / n as f64;
                    let off = amp
                        * (std::f64::consts::PI * t).sin()
                        * noise(mix((ri * 100 + k) as u64), t * len / 1500.0);
                    line.push((
                        a.0 + t * (b.0 - a.0) + off * nx,
                        a.1 + t * (b.1 - a.1) + off * ny,
                    ));
                }
            }
            River {
                name: r.name,
                en: r.en,
                width: r.width_m,
                line,
            }
        })
        .collect()
}

/// How far `p` is from the nearest river's bank (negative: in the water).
pub fn from_bank(rivers: &[River], p: Xy) -> f64 {
    rivers
        .iter()
        .map(|r| r.distance(p) - r.width / 2.0)
        .fold(f64::MAX, f64::min)
}

/// The settlements: per district the seat, its towns, then villages placed at random (seeded)
/// inside the district, away from the rivers and from each other.
pub fn settlements(rng: &mut ChaCha8Rng, locator: &DistrictLocator, rivers: &[River]) -> Vec<Town> {
    let mut towns = Vec::new();
    let key = |rng: &mut ChaCha8Rng| rng.gen::<u64>();
    for (di, spec) in DISTRICTS.iter().enumerate() {
        let center = to_xy(spec.seat.0, spec.seat.1);
        let suburbs: Vec<(String, String, Xy)> = spec
            .towns
            .iter()
            .filter(|t| t.at.is_none())
            .enumerate()
            .map(|(k, t)| {
                // Around the centre, a third of the radius out, evenly spread.
                let a = k as f64 * 2.1 + 0.4;
                let r = spec.seat_radius_m * 0.4;
                (
                    t.name.to_string(),
                    t.en.to_string(),
                    (center.0 + r * a.cos(), center.1 + r * a.sin()),
                )
            })
            .collect();
        towns.push(Town {
            name: spec.seat_name.0.into(),
            en: spec.seat_name.1.into(),
            kind: spec.seat_kind,
            seat: true,
            district: di,
            center,
            radius: spec.seat_radius_m,
            angle: rng.gen_range(-0.3..0.3),
            key: key(rng),
            suburbs,
        });
        for t in spec.towns {
            if let Some((lat, lon)) = t.at {
                towns.push(Town {
                    name: t.name.into(),
                    en: t.en.into(),
                    kind: Kind::Town,
                    seat: false,
                    district: di,
                    center: to_xy(lat, lon),
                    radius: rng.gen_range(800.0..1100.0),
                    angle: rng.gen_range(-0.5..0.5),
                    key: key(rng),
                    suburbs: vec![],
                });
            }
        }
    }
    let mut names: Vec<(usize, usize)> = (0..VILLAGE_A.len())
        .flat_map(|a| (0..VILLAGE_B.len()).map(move |b| (a, b)))
        .collect();
    names.shuffle(rng);
    let mut names = names.into_iter();
    let (lo, hi) = (to_xy(28.4, 118.2), to_xy(29.4, 119.4));
    for di in 0..DISTRICTS.len() {
        let mut placed = 0;
        let mut tries = 0;
        while placed < VILLAGES && tries < 10_000 {
            tries += 1;
            let p = (rng.gen_range(lo.0..hi.0), rng.gen_range(lo.1..hi.1));
            let ll = to_ll(p);
            if locator.locate(ll) != Some(di as i64)
                || from_bank(rivers, p) < 800.0
                || towns.iter().any(|t| dist(t.center, p) < t.radius + 2500.0)
            {
                continue;
            }
            let Some((a, b)) = names.next() else { break };
            let (a, b) = (VILLAGE_A[a], VILLAGE_B[b]);
            towns.push(Town {
                name: format!("{}{}村", a.0, b.0),
                en: format!("{}{} Village", a.1, b.1),
                kind: Kind::Village,
                seat: false,
                district: di,
                center: p,
                radius: rng.gen_range(280.0..380.0),
                angle: rng.gen_range(-0.8..0.8),
                key: key(rng),
                suburbs: vec![],
            });
            placed += 1;
        }
    }
    towns
}

/// River segments bucketed on a 2 km grid, so "how far to the bank" and "does this street
/// cross a river" look at the few segments nearby instead of every river's whole length.
pub struct RiverIndex {
    buckets: std::collections::HashMap<(i64, i64), Vec<RiverSegment>>,
}

/// Half the river's width, and the segment's ends.
type RiverSegment = (f64, Xy, Xy);

const BUCKET_M: f64 = 2000.0;

fn bucket(p: Xy) -> (i64, i64) {
    (
        (p.0 / BUCKET_M).floor() as i64,
        (p.1 / BUCKET_M).floor() as i64,
    )
}

impl RiverIndex {
    pub fn new(rivers: &[River]) -> Self {
        let mut buckets: std::collections::HashMap<(i64, i64), Vec<RiverSegment>> =
            std::collections::HashMap::new();
        for r in rivers {
            for w in r.line.windows(2) {
                let (lo, hi) = (
                    bucket((w[0].0.min(w[1].0), w[0].1.min(w[1].1))),
                    bucket((w[0].0.max(w[1].0), w[0].1.max(w[1].1))),
                );
                for x in lo.0..=hi.0 {
                    for y in lo.1..=hi.1 {
                        buckets
                            .entry((x, y))
                            .or_default()
                            .push((r.width / 2.0, w[0], w[1]));
                    }
                }
            }
        }
        RiverIndex { buckets }
    }

    /// Segments (half width, ends) in the buckets within `reach` buckets of `p`.
    fn near(&self, p: Xy, reach: i64) -> impl Iterator<Item = &RiverSegment> {
        let b = bucket(p);
        (-reach..=reach)
            .flat_map(move |dx| (-reach..=reach).map(move |dy| (b.0 + dx, b.1 + dy)))
            .filter_map(|k| self.buckets.get(&k))
            .flatten()
    }

    /// Metres from `p` to the nearest bank (negative: in the water), exact up to ~2 km;
    /// `f64::MAX` when no river is within ~2 km.
    pub fn bank_distance(&self, p: Xy) -> f64 {
        self.near(p, 1)
            .map(|(h, a, b)| dist_to_segment(p, *a, *b) - h)
            .fold(f64::MAX, f64::min)
    }

    /// Whether the segment a–b (shorter than 2 km) crosses a river's centre line.
    pub fn crosses(&self, a: Xy, b: Xy) -> bool {
        self.near(a, 1)
            .any(|(_, p, q)| super::geo::segments_cross(a, b, *p, *q))
    }
}
