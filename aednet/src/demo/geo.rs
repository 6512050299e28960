//! Plane geometry for the generator: one local projection in metres over the whole demo region
//! (1.2° × 1° at 29° N: scale errors well under 1 %, which no synthetic street notices), smooth
//! deterministic noise, and the irregular district boundaries.

use aednet_core::LatLon;

const M_PER_DEG: f64 = 111_320.0;
/// The projection's origin: the middle of the region.
const LAT0: f64 = 28.9;
const LON0: f64 = 118.8;

pub type Xy = (f64, f64);

/// Metres east and north of the region's middle.
pub fn to_xy(lat: f64, lon: f64) -> Xy {
    (
        (lon - LON0) * M_PER_DEG * LAT0.to_radians().cos(),
        (lat - LAT0) * M_PER_DEG,
    )
}

pub fn to_ll((x, y): Xy) -> LatLon {
    LatLon {
        lat: LAT0 + y / M_PER_DEG,
        lon: LON0 + x / (M_PER_DEG * LAT0.to_radians().cos()),
    }
}

pub fn dist(a: Xy, b: Xy) -> f64 {
    (a.0 - b.0).hypot(a.1 - b.1)
}

/// A well-mixed 64-bit hash (splitmix64), for noise phases.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn phase(key: u64, k: u64) -> f64 {
    (mix(key.wrapping_mul(31).wrapping_add(k)) >> 11) as f64 / (1u64 << 53) as f64
        * std::f64::consts::TAU
}

/// Smooth noise in [-1, 1] along `t` (about one wave per unit of `t`), the same for the same
/// key: three sines with hashed phases.
pub fn noise(key: u64, t: f64) -> f64 {
    ((t * 1.3 + phase(key, 1)).sin() * 0.5
        + (t * 2.9 + phase(key, 2)).sin() * 0.3
        + (t * 6.1 + phase(key, 3)).sin() * 0.2)
        .clamp(-1.0, 1.0)
}

/// Whether segments p1–p2 and q1–q2 cross (proper or touching).
pub fn segments_cross(p1: Xy, p2: Xy, q1: Xy, q2: Xy) -> bool {
    let orient = |a: Xy, b: Xy, c: Xy| (b.0 - a.0) * (c.1 - a.1) - (b.1 - a.1) * (c.0 - a.0);
    let (d1, d2) = (orient(q1, q2, p1), orient(q1, q2, p2));
    let (d3, d4) = (orient(p1, p2, q1), orient(p1, p2, q2));
    d1 * d2 <= 0.0 && d3 * d4 <= 0.0 && (d1 != 0.0 || d2 != 0.0 || d3 != 0.0 || d4 != 0.0)
}

pub fn dist_to_segment(p: Xy, a: Xy, b: Xy) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    };
    dist(p, (a.0 + t * dx, a.1 + t * dy))
}

/// Degrees between points of an irregular boundary edge, and the most it strays from the
/// straight line (~1.7 km).
const EDGE_STEP: f64 = 0.01;
const EDGE_AMPLITUDE: f64 = 0.015;

/// The district rings with wandering edges instead of straight ones. Every ring is
/// axis-aligned, so a point of an edge is displaced across the edge by noise keyed on the
/// line the edge lies on and on its position along it: two districts sharing an edge compute
/// the same boundary. Displacement fades to zero at every ring vertex (`breaks`, those of all
/// rings), so corners and T-junctions stay where they are and no gap or overlap appears.
pub fn irregular_ring(ring: &[(f64, f64)], breaks: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for (k, &a) in ring.iter().enumerate() {
        let b = ring[(k + 1) % ring.len()];
        out.push(a);
        let horizontal = a.1 == b.1;
        // Position along the line, and the line's constant coordinate.
        let (s0, s1, line) = if horizontal {
            (a.0, b.0, a.1)
        } else {
            (a.1, b.1, a.0)
        };
        let stops: Vec<f64> = breaks
            .iter()
            .filter(|v| if horizontal { v.1 == line } else { v.0 == line })
            .map(|v| if horizontal { v.0 } else { v.1 })
            .collect();
        let key = mix(((line * 1000.0).round() as i64 as u64) ^ u64::from(horizontal));
        let n = ((s1 - s0).abs() / EDGE_STEP).round() as i64;
        // Grid-aligned steps, so both neighbours sample the same positions.
        let first = (s0.min(s1) / EDGE_STEP).round() as i64;
        let mut inner: Vec<(f64, f64)> = (1..n)
            .map(|i| {
                let s = (first + i) as f64 * EDGE_STEP;
                let fade = stops
                    .iter()
                    .map(|t| (s - t).abs())
                    .fold(f64::MAX, f64::min)
                    .min(0.05)
                    / 0.05;
                let d = EDGE_AMPLITUDE * fade * noise(key, s * 20.0);
                if horizontal {
                    (s, line + d)
                } else {
                    (line + d, s)
                }
            })
            .collect();
        if s1 < s0 {
            inner.reverse();
        }
        out.extend(inner);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_round_trips() {
        let p = to_ll(to_xy(29.1, 118.3));
        assert!((p.lat - 29.1).abs() < 1e-9 && (p.lon - 118.3).abs() < 1e-9);
        let d = dist(to_xy(28.9, 118.8), to_xy(28.9, 118.81));
        let real = LatLon {
            lat: 28.9,
            lon: 118.8,
        }
        .distance_m(&LatLon {
            lat: 28.9,
            lon: 118.81,
        });
        assert!((d - real).abs() / real < 0.01, "{d} vs {real}");
    }

    #[test]
    fn shared_edges_wander_the_same_way() {
        let a = [(0.0, 0.0), (0.4, 0.0), (0.4, 0.3), (0.0, 0.3)];
        let b = [(0.4, 0.0), (0.8, 0.0), (0.8, 0.3), (0.4, 0.3)];
        let breaks: Vec<(f64, f64)> = a.iter().chain(b.iter()).copied().collect();
        let (ra, rb) = (irregular_ring(&a, &breaks), irregular_ring(&b, &breaks));
        let at = |r: &[(f64, f64)], v: (f64, f64)| r.iter().position(|p| *p == v).unwrap();
        let on_a = ra[at(&ra, (0.4, 0.0))..=at(&ra, (0.4, 0.3))].to_vec();
        let mut on_b = rb[at(&rb, (0.4, 0.3))..].to_vec();
        on_b.push(rb[0]);
        on_b.reverse();
        assert!(on_a.len() > 20);
        // b walks the shared edge the other way round.
        assert_eq!(on_a, on_b);
        assert!(
            on_a.iter().any(|p| (p.0 - 0.4).abs() > 0.003),
            "not straight"
        );
    }
}
