//! Unit-sphere geometry: conversions between latitude/longitude and unit vectors, and between
//! chord length and great-circle distance.

use aednet_core::geo_util::{LatLon, EARTH_RADIUS_M};
use rstar::{PointDistance, RTreeObject, AABB};

/// An item in an R-tree, at a unit vector. Equality is by id and position, so removing one of
/// two items at the same point removes the right one.
#[derive(Debug, Clone)]
pub struct Located<T> {
    pub xyz: [f64; 3],
    pub id: i64,
    pub item: T,
}

impl<T> Located<T> {
    pub fn new(id: i64, pos: LatLon, item: T) -> Self {
        Self {
            xyz: to_xyz(pos),
            id,
            item,
        }
    }
}

impl<T> PartialEq for Located<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.xyz == other.xyz
    }
}

impl<T> RTreeObject for Located<T> {
    type Envelope = AABB<[f64; 3]>;
    fn envelope(&self) -> Self::Envelope {
        AABB::from_point(self.xyz)
    }
}

impl<T> PointDistance for Located<T> {
    fn distance_2(&self, p: &[f64; 3]) -> f64 {
        let d = [self.xyz[0] - p[0], self.xyz[1] - p[1], self.xyz[2] - p[2]];
        d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    }
}

pub fn to_xyz(p: LatLon) -> [f64; 3] {
    let (lat, lon) = (p.lat.to_radians(), p.lon.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

/// Squared chord length on the unit sphere equivalent to a surface distance in metres.
pub fn chord2_for_distance(m: f64) -> f64 {
    let theta = (m / EARTH_RADIUS_M).min(std::f64::consts::PI);
    let c = 2.0 * (theta / 2.0).sin();
    c * c
}

/// Surface distance in metres for a squared chord length on the unit sphere.
pub fn distance_for_chord2(c2: f64) -> f64 {
    let c = c2.max(0.0).sqrt().min(2.0);
    2.0 * (c / 2.0).asin() * EARTH_RADIUS_M
}

/// Initial bearing from `a` to `b`, degrees clockwise from north, 0..360.
pub fn bearing_deg(a: LatLon, b: LatLon) -> f64 {
    let (p1, p2) = (a.lat.to_radians(), b.lat.to_radians());
    let dl = (b.lon - a.lon).to_radians();
    let y = dl.sin() * p2.cos();
    let x = p1.cos() * p2.sin() - p1.sin() * p2.cos() * dl.cos();
    (y.atan2(x).to_degrees() + 360.0) % 360.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chord_and_haversine_agree() {
        let a = LatLon::new(47.14, 9.52).unwrap();
        for b in [
            LatLon::new(47.15, 9.53).unwrap(),
            LatLon::new(-33.9, 151.2).unwrap(),
            LatLon::new(0.0, -170.0).unwrap(),
        ] {
            let (xa, xb) = (to_xyz(a), to_xyz(b));
            let c2: f64 = (0..3).map(|i| (xa[i] - xb[i]).powi(2)).sum();
            let d = a.distance_m(&b);
            assert!(
                (distance_for_chord2(c2) - d).abs() < 1e-3 * d.max(1.0),
                "{d}"
            );
            assert!((chord2_for_distance(d) - c2).abs() < 1e-9);
        }
    }

    #[test]
    fn bearings() {
        let o = LatLon::new(0.0, 0.0).unwrap();
        assert!((bearing_deg(o, LatLon::new(1.0, 0.0).unwrap()) - 0.0).abs() < 1e-9);
        assert!((bearing_deg(o, LatLon::new(0.0, 1.0).unwrap()) - 90.0).abs() < 1e-9);
        assert!((bearing_deg(o, LatLon::new(-1.0, 0.0).unwrap()) - 180.0).abs() < 1e-9);
        assert!((bearing_deg(o, LatLon::new(0.0, -1.0).unwrap()) - 270.0).abs() < 1e-9);
    }
}
