//! The demo city's population grid: where its 2.55 million people live, like a Chinese county
//! seat and its hinterland — thousands per km² in the cores of the seats and towns, hundreds
//! in the villages, tens in the hills, more along the river valleys, none in the rivers.
//!
//! Points of a 250 m grid cover every km² a settlement reaches into, points of a 1 km grid the
//! rest (each point stands for the people of its square). Each district's points are scaled
//! so they add up to the district's population exactly, so the grid and the district table
//! agree. Written as the CSV `lat,lon,population` that `[coverage] population_grid` reads —
//! the same file a real deployment gets from a census grid.

use std::collections::HashSet;
use std::fmt::Write;

use aednet_core::district::DistrictLocator;
use aednet_core::LatLon;

use super::geo::{dist, noise, to_ll, to_xy, Xy};
use super::spec::Kind;
use super::towns::{RiverIndex, Town};

const FINE_M: f64 = 250.0;
const COARSE_M: f64 = 1000.0;

#[derive(Debug, Clone, PartialEq)]
pub struct PopulationCell {
    /// Index into the districts.
    pub district: usize,
    pub pos: LatLon,
    pub population: i64,
    /// The square this point stands for.
    pub area_km2: f64,
}

/// People per km² at `p` before scaling to the districts' totals.
fn density(towns: &[Town], water: &RiverIndex, p: Xy) -> f64 {
    let bank = water.bank_distance(p);
    if bank < 0.0 {
        return 0.0;
    }
    // Hills: 10–50 per km², wandering; valleys: up to 150 more near a river.
    let hills = 30.0 + 20.0 * noise(7, p.0 / 4000.0) * noise(11, p.1 / 4000.0).abs();
    let valley = 150.0 * (-(bank / 1500.0).powi(2)).exp();
    let settled: f64 = towns
        .iter()
        .map(|t| {
            let (core, spread) = match (t.kind, t.seat) {
                (_, true) => (5000.0, 1.0),
                (Kind::Village, _) => (1200.0, 0.8),
                _ => (3000.0, 0.8),
            };
            let d = dist(p, t.center) / (t.radius * spread);
            if d > 3.0 {
                0.0
            } else {
                core * (-d * d).exp()
            }
        })
        .sum();
    hills + valley + settled
}

/// The population grid; `totals[d]` is district `d`'s population.
pub fn grid(
    towns: &[Town],
    water: &RiverIndex,
    locator: &DistrictLocator,
    totals: &[i64],
) -> Vec<PopulationCell> {
    let key = |p: Xy, step: f64| ((p.0 / step).floor() as i64, (p.1 / step).floor() as i64);
    // The km² squares a settlement reaches into get the fine grid.
    let mut fine: HashSet<(i64, i64)> = HashSet::new();
    for t in towns {
        let r = t.radius * 1.7;
        let (lo, hi) = (
            key((t.center.0 - r, t.center.1 - r), COARSE_M),
            key((t.center.0 + r, t.center.1 + r), COARSE_M),
        );
        for x in lo.0..=hi.0 {
            for y in lo.1..=hi.1 {
                fine.insert((x, y));
            }
        }
    }
    let (lo, hi) = (
        key(to_xy(28.35, 118.15), COARSE_M),
        key(to_xy(29.45, 119.45), COARSE_M),
    );
    let per = (COARSE_M / FINE_M) as i64;
    let mut raw: Vec<(usize, Xy, f64, f64)> = Vec::new();
    for x in lo.0..=hi.0 {
        for y in lo.1..=hi.1 {
            let squares: Vec<(Xy, f64)> = if fine.contains(&(x, y)) {
                (0..per)
                    .flat_map(|i| (0..per).map(move |j| (i, j)))
                    .map(|(i, j)| {
                        let p = (
                            x as f64 * COARSE_M + (i as f64 + 0.5) * FINE_M,
                            y as f64 * COARSE_M + (j as f64 + 0.5) * FINE_M,
                        );
                        (p, (FINE_M / 1000.0).powi(2))
                    })
                    .collect()
            } else {
                let p = ((x as f64 + 0.5) * COARSE_M, (y as f64 + 0.5) * COARSE_M);
                vec![(p, (COARSE_M / 1000.0).powi(2))]
            };
            for (p, area) in squares {
                let Some(d) = locator.locate(to_ll(p)) else {
                    continue;
                };
                let people = density(towns, water, p) * area;
                if people > 0.0 {
                    raw.push((d as usize, p, people, area));
                }
            }
        }
    }
    // Scale each district to its total; round by largest remainder so the sum is exact.
    let mut sums = vec![0.0; totals.len()];
    for (d, _, people, _) in &raw {
        sums[*d] += people;
    }
    let mut cells: Vec<PopulationCell> = Vec::with_capacity(raw.len());
    let mut fractions: Vec<Vec<(f64, usize)>> = vec![Vec::new(); totals.len()];
    let mut given = vec![0i64; totals.len()];
    for (d, p, people, area) in raw {
        let exact = people * totals[d] as f64 / sums[d];
        let whole = exact.floor() as i64;
        given[d] += whole;
        fractions[d].push((exact - whole as f64, cells.len()));
        cells.push(PopulationCell {
            district: d,
            pos: to_ll(p),
            population: whole,
            area_km2: area,
        });
    }
    for (d, mut f) in fractions.into_iter().enumerate() {
        f.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let short = (totals[d] - given[d]).max(0) as usize;
        for (_, k) in f.into_iter().take(short) {
            cells[k].population += 1;
        }
    }
    cells.retain(|c| c.population > 0);
    cells
}

/// The grid as the CSV `[coverage] population_grid` reads.
pub fn csv(cells: &[PopulationCell]) -> String {
    let mut out = String::with_capacity(cells.len() * 32);
    out.push_str("lat,lon,population\n");
    for c in cells {
        let _ = writeln!(out, "{:.6},{:.6},{}", c.pos.lat, c.pos.lon, c.population);
    }
    out
}
