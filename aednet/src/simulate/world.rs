//! The simulated city: its AEDs, its walking network, where its people live and the rescuers
//! generated at a density — the demo city, its "dense core" variant, or any database (an
//! imported real city) — and the arrests drawn in it.
//!
//! Field figures the defaults rest on (also in `docs/simulator.md`):
//! - volunteers move at a median 2.3 m/s, 1.8 m/s where more than 8 000 people live per km²
//!   (Swedish GPS study of dispatched volunteers);
//! - EMS arrives after a median 10 minutes in towns and 15 in the country (urban = a cell of
//!   at least 1 500 people/km², the EU degree-of-urbanisation threshold);
//! - about a fifth of out-of-hospital arrests happen in public places (registries: 15–30 %).

use std::collections::HashMap;
use std::sync::Arc;

use aednet_core::LatLon;
use aednet_geoindex::{AedEntry, Schedules};
use chrono::{DateTime, Datelike, Duration, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::mix;

/// The plans' target: 2 % of the registered population are trained rescuers.
pub const DEFAULT_RESCUERS_PER_1000: f64 = 20.0;
/// Where volunteers walk slower (Swedish GPS study: 1.8 vs 2.3 m/s median).
pub const DENSE_PER_KM2: f64 = 8000.0;
pub const SPEED_MEDIAN_MPS: f64 = 2.3;
pub const SPEED_DENSE_MPS: f64 = 1.8;
/// EU degree of urbanisation: an urban centre has ≥ 1 500 inhabitants per km².
pub const URBAN_PER_KM2: f64 = 1500.0;
/// Share of arrests in public places.
const PUBLIC_SHARE: f64 = 0.2;
/// Share of rescuers who spend the working day away from home (work, school, shops).
const AWAY_BY_DAY: f64 = 0.6;
/// On-duty share by local hour, relative to the mean (`--on-duty`): fewer at night, most in
/// the evening (assumption, shaped like the responder apps' published activity by hour).
const ON_DUTY_BY_HOUR: [f64; 24] = [
    0.4, 0.3, 0.3, 0.3, 0.3, 0.4, 0.7, 1.0, 1.1, 1.1, 1.1, 1.1, 1.2, 1.1, 1.1, 1.1, 1.2, 1.4, 1.6,
    1.6, 1.5, 1.3, 1.0, 0.6,
];

/// Which city to simulate in.
#[derive(Debug, Clone, PartialEq)]
pub enum CitySource {
    /// The synthetic demo city (Quzhou-like), generated from the seed.
    Demo,
    /// The demo city with one district at Shenzhen-like density (~25 000 people/km² in its
    /// core) and AEDs added at the plan's 1.5 per 10 000 for the added people.
    DenseCore,
    /// What a database holds: districts, AEDs, the stored walking network and the configured
    /// population grid (else the districts' totals spread over their cells).
    Database,
}

#[derive(Debug, Clone, Copy)]
pub struct Cell {
    pub pos: LatLon,
    /// The side of the square this point stands for, metres.
    pub side_m: f64,
    pub population: f64,
    /// Index into [`World::districts`].
    pub district: usize,
}

impl Cell {
    pub fn density(&self) -> f64 {
        self.population / (self.side_m * self.side_m / 1e6).max(1e-6)
    }
}

#[derive(Debug, Clone)]
pub struct DistrictInfo {
    pub id: Option<i64>,
    pub name: String,
    pub population: f64,
    pub area_km2: f64,
    /// The registered rescuers the plan aims for, per 1 000 people (`target_rescuers`).
    pub target_per_1000: Option<f64>,
    /// Rescuers generated here, per 1 000 people.
    pub rescuers_per_1000: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct Rescuer {
    pub home: LatLon,
    /// Where they are on a working day's daytime.
    pub day: LatLon,
}

#[derive(Clone)]
pub struct World {
    pub name: String,
    pub aeds: Vec<AedEntry>,
    /// The walking network: every walk (the engine's plans and ETAs, and the rescuers'
    /// arrivals) is timed on it; `None` falls back to straight lines with a detour factor.
    pub graph: Option<Arc<aednet_routing::Graph>>,
    pub cells: Vec<Cell>,
    pub districts: Vec<DistrictInfo>,
    pub rescuers: Vec<Rescuer>,
    pub tz: Tz,
    /// Running totals of people per cell (homes), and of people × density (daytime places,
    /// which concentrate in the centres).
    cumulative: Vec<f64>,
    day_cumulative: Vec<f64>,
    home_buckets: Buckets,
    day_buckets: Buckets,
}

/// Rescuers by 1 km square, to find those near an arrest without looking at all of them.
#[derive(Default, Clone)]
struct Buckets {
    lat0: f64,
    map: HashMap<(i32, i32), Vec<u32>>,
}

const BUCKET_M: f64 = 1000.0;

impl Buckets {
    fn new(lat0: f64, points: impl Iterator<Item = LatLon>) -> Self {
        let mut b = Buckets {
            lat0,
            map: HashMap::new(),
        };
        for (i, p) in points.enumerate() {
            let k = b.key(p);
            b.map.entry(k).or_default().push(i as u32);
        }
        b
    }
    fn key(&self, p: LatLon) -> (i32, i32) {
        (
            (p.lat * 111_000.0 / BUCKET_M).floor() as i32,
            (p.lon * 111_000.0 * self.lat0.to_radians().cos() / BUCKET_M).floor() as i32,
        )
    }
    /// Candidates within `radius_m` of `p` (a superset; the caller checks the distance).
    fn near(&self, p: LatLon, radius_m: f64) -> impl Iterator<Item = u32> + '_ {
        let (ky, kx) = self.key(p);
        let r = (radius_m / BUCKET_M).ceil() as i32 + 1;
        (ky - r..=ky + r)
            .flat_map(move |y| (kx - r..=kx + r).map(move |x| (y, x)))
            .filter_map(|k| self.map.get(&k))
            .flatten()
            .copied()
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    // Box–Muller.
    let (u1, u2): (f64, f64) = (rng.gen_range(1e-12..1.0), rng.gen());
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn offset(p: LatLon, dx: f64, dy: f64) -> LatLon {
    LatLon {
        lat: p.lat + dy / 111_000.0,
        lon: p.lon + dx / (111_000.0 * p.lat.to_radians().cos()),
    }
}

fn draw(cumulative: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let total = cumulative.last().copied().unwrap_or(0.0);
    let x = rng.gen_range(0.0..total.max(f64::MIN_POSITIVE));
    cumulative
        .partition_point(|c| *c <= x)
        .min(cumulative.len().saturating_sub(1))
}

fn running(v: impl Iterator<Item = f64>) -> Vec<f64> {
    v.scan(0.0, |s, x| {
        *s += x;
        Some(*s)
    })
    .collect()
}

impl World {
    /// A point in cell `k`'s square, drawn uniformly.
    fn in_cell(&self, rng: &mut ChaCha8Rng, k: usize) -> LatLon {
        let c = &self.cells[k];
        offset(
            c.pos,
            rng.gen_range(-0.5..0.5) * c.side_m,
            rng.gen_range(-0.5..0.5) * c.side_m,
        )
    }

    /// A home, drawn by where people live.
    pub fn home(&self, rng: &mut ChaCha8Rng) -> (LatLon, usize) {
        let k = draw(&self.cumulative, rng);
        (self.in_cell(rng, k), k)
    }

    /// A daytime place (work, school, shops, public places): by people × density.
    pub fn day_place(&self, rng: &mut ChaCha8Rng) -> (LatLon, usize) {
        let k = draw(&self.day_cumulative, rng);
        (self.in_cell(rng, k), k)
    }

    pub fn population(&self) -> f64 {
        self.cumulative.last().copied().unwrap_or(0.0)
    }

    pub fn area_km2(&self) -> f64 {
        self.cells.iter().map(|c| c.side_m * c.side_m / 1e6).sum()
    }

    /// Assembles a world from its parts and generates the rescuers: per district, its rate
    /// per 1 000 people (`rate`, else its `target_rescuers`, else the plans' 2 %), homes
    /// where people live, daytime places where people gather.
    fn assemble(
        name: String,
        aeds: Vec<AedEntry>,
        graph: Option<Arc<aednet_routing::Graph>>,
        cells: Vec<Cell>,
        mut districts: Vec<DistrictInfo>,
        rate: Option<f64>,
        seed: u64,
    ) -> anyhow::Result<World> {
        anyhow::ensure!(!cells.is_empty(), "the city has no cells: nowhere to place arrests (import districts with boundaries, or configure a population grid)");
        let mut cells = cells;
        if cells.iter().all(|c| c.population <= 0.0) {
            // No population anywhere: every cell counts alike (say so in the report).
            for c in &mut cells {
                c.population = 1.0;
            }
        }
        for (i, d) in districts.iter_mut().enumerate() {
            let (pop, area) = cells
                .iter()
                .filter(|c| c.district == i)
                .fold((0.0, 0.0), |(p, a), c| {
                    (p + c.population, a + c.side_m * c.side_m / 1e6)
                });
            d.population = pop;
            d.area_km2 = area;
        }
        let tz = aednet_core::hours::time_zone_at(cells[0].pos);
        let mut w = World {
            name,
            aeds,
            graph,
            cumulative: running(cells.iter().map(|c| c.population)),
            day_cumulative: running(cells.iter().map(|c| c.population * c.density().sqrt())),
            cells,
            districts,
            rescuers: Vec::new(),
            tz,
            home_buckets: Buckets::default(),
            day_buckets: Buckets::default(),
        };
        w.generate_rescuers(rate, seed);
        Ok(w)
    }

    /// (Re)generates the rescuers: per district, `rate` per 1 000 people, else its
    /// `target_rescuers`, else the plans' 2 %; homes where people live, daytime places where
    /// people gather (or home, for those who stay).
    pub fn generate_rescuers(&mut self, rate: Option<f64>, seed: u64) {
        for d in &mut self.districts {
            d.rescuers_per_1000 = rate
                .or(d.target_per_1000)
                .unwrap_or(DEFAULT_RESCUERS_PER_1000);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7e5c);
        let mut rescuers = Vec::new();
        for k in 0..self.cells.len() {
            let c = self.cells[k];
            let expected = c.population * self.districts[c.district].rescuers_per_1000 / 1000.0;
            let n = expected.floor() as usize + usize::from(rng.gen_bool(expected.fract()));
            for _ in 0..n {
                let home = self.in_cell(&mut rng, k);
                let day = if rng.gen_bool(AWAY_BY_DAY) {
                    self.day_place(&mut rng).0
                } else {
                    home
                };
                rescuers.push(Rescuer { home, day });
            }
        }
        let lat0 = self.cells[0].pos.lat;
        self.home_buckets = Buckets::new(lat0, rescuers.iter().map(|r| r.home));
        self.day_buckets = Buckets::new(lat0, rescuers.iter().map(|r| r.day));
        self.rescuers = rescuers;
    }

    /// The demo city (or its dense-core variant) generated from the seed.
    pub fn demo(
        seed: u64,
        now: DateTime<Utc>,
        dense: bool,
        rate: Option<f64>,
    ) -> anyhow::Result<World> {
        let city = crate::demo::generate(seed, now);
        let mut schedules = Schedules::default();
        let mut aeds: Vec<AedEntry> = city
            .aeds
            .iter()
            .enumerate()
            .map(|(i, (_, d))| AedEntry {
                id: i as i64 + 1,
                pos: d.location,
                access: d.access,
                status: d.readiness.status,
                indoor: d.indoor,
                floor: aednet_geoindex::parse_floor(d.level.as_deref()),
                cabinet_locked: d.cabinet_locked,
                schedule: schedules.get(d.opening_hours.as_deref(), d.time_zone, d.location),
                detail: Default::default(),
            })
            .collect();
        let mut cells: Vec<Cell> = city
            .population
            .iter()
            .map(|c| Cell {
                pos: c.pos,
                side_m: c.area_km2.sqrt() * 1000.0,
                population: c.population as f64,
                district: c.district,
            })
            .collect();
        let districts: Vec<DistrictInfo> = city
            .districts
            .iter()
            .map(|d| DistrictInfo {
                id: None,
                name: d.name.clone(),
                population: 0.0,
                area_km2: 0.0,
                target_per_1000: per_1000(d.target_rescuers, d.population),
                rescuers_per_1000: 0.0,
            })
            .collect();
        let mut name = "the demo city".to_string();
        if dense {
            name = "the demo city, dense core".to_string();
            densify(&mut cells, &mut aeds, seed);
        }
        let (graph, _) = aednet_routing::build(&city.extract);
        let graph = (graph.node_count() > 0).then(|| Arc::new(graph));
        World::assemble(name, aeds, graph, cells, districts, rate, seed)
    }

    /// The city a database holds.
    pub async fn from_store(
        store: &dyn aednet_store::Store,
        config: &aednet_api::coverage::CoverageConfig,
        mut name: String,
        rate: Option<f64>,
        seed: u64,
    ) -> anyhow::Result<World> {
        let points = match &config.population_grid {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("population grid {}: {e}", path.display()))?;
                aednet_api::coverage::read_population_csv(&text)
                    .map_err(anyhow::Error::msg)?
                    .0
            }
            None => Vec::new(),
        };
        let net = aednet_api::coverage::load_network(store, &aednet_geoindex::GeoIndex::default())
            .await?;
        let grid = aednet_api::coverage::build_grid(&net.districts, config.res, &points)
            .map_err(anyhow::Error::msg)?;
        let mut districts: Vec<DistrictInfo> = net
            .districts
            .iter()
            .map(|d| DistrictInfo {
                id: Some(d.id),
                name: d.data.name.clone(),
                population: 0.0,
                area_km2: 0.0,
                target_per_1000: per_1000(d.data.target_rescuers, d.data.population),
                rescuers_per_1000: 0.0,
            })
            .collect();
        let index: HashMap<i64, usize> = net
            .districts
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id, i))
            .collect();
        let outside = districts.len();
        let mut cells: Vec<Cell> = grid
            .cells
            .iter()
            .map(|c| Cell {
                pos: c.center,
                side_m: c.cell.area_m2().sqrt(),
                population: c.population,
                district: c
                    .district
                    .and_then(|d| index.get(&d).copied())
                    .unwrap_or(outside),
            })
            .collect();
        if cells.iter().any(|c| c.district == outside) {
            districts.push(DistrictInfo {
                id: None,
                name: "(outside every district)".into(),
                population: 0.0,
                area_km2: 0.0,
                target_per_1000: None,
                rescuers_per_1000: 0.0,
            });
        }
        let graph = match store
            .get_artifact(aednet_store::artifacts::kind::WALK_GRAPH)
            .await?
        {
            Some(a) => Some(Arc::new(
                aednet_routing::Graph::decode(&a.bytes).map_err(|e| anyhow::anyhow!("{e}"))?,
            )),
            None => None,
        };
        if let Some(g) = &graph {
            let spread: Vec<bool> = grid
                .cells
                .iter()
                .map(|c| {
                    c.district.is_some_and(|d| {
                        grid.sources.get(&d) == Some(&aednet_coverage::PopulationSource::District)
                    })
                })
                .collect();
            if spread_by_streets(&mut cells, &spread, &grid, g) > 0 {
                name.push_str(" (people without a grid placed by street junctions)");
            }
        }
        // Cells nobody lives in still count for the area, not for arrests or rescuers.
        if !cells_all_empty(&cells) {
            cells.retain(|c| c.population > 0.0);
        }
        World::assemble(name, net.entries, graph, cells, districts, rate, seed)
    }
}

fn cells_all_empty(cells: &[Cell]) -> bool {
    cells.iter().all(|c| c.population <= 0.0)
}

/// Where a district's people are known only as its total (no population grid), they live
/// where its streets are, not evenly over forests and mountainsides: each such district's
/// people are spread over its cells in proportion to the walking network's junctions there
/// (nodes where three or more ways meet; street-junction density is a common proxy for where
/// people live). A district with no junction at all keeps the even spread. Totals per district
/// are unchanged. `spread[k]`: cell `k` (the grid's order) holds an evenly spread population.
pub(super) fn spread_by_streets(
    cells: &mut [Cell],
    spread: &[bool],
    grid: &aednet_coverage::Grid,
    graph: &aednet_routing::Graph,
) -> usize {
    let mut degree = vec![0u8; graph.node_count()];
    for e in graph.edges() {
        for v in [e.a, e.b] {
            degree[v as usize] = degree[v as usize].saturating_add(1);
        }
    }
    let mut junctions = vec![0.0f64; cells.len()];
    for (v, d) in degree.iter().enumerate() {
        if *d < 3 {
            continue;
        }
        let Some(k) = aednet_coverage::grid::cell_at(graph.pos(v as u32), grid.res)
            .and_then(|c| grid.index_of(c))
        else {
            continue;
        };
        junctions[k as usize] += 1.0;
    }
    // Per district: its people and its junctions over the evenly spread cells.
    let mut totals: HashMap<usize, (f64, f64)> = HashMap::new();
    for (k, c) in cells.iter().enumerate() {
        if spread[k] {
            let t = totals.entry(c.district).or_default();
            t.0 += c.population;
            t.1 += junctions[k];
        }
    }
    for (k, c) in cells.iter_mut().enumerate() {
        if let Some(&(people, j)) = totals.get(&c.district).filter(|_| spread[k]) {
            if j > 0.0 {
                c.population = people * junctions[k] / j;
            }
        }
    }
    totals.values().filter(|t| t.1 > 0.0).count()
}

fn per_1000(target: Option<i64>, population: Option<i64>) -> Option<f64> {
    match (target, population) {
        (Some(t), Some(p)) if p > 0 => Some(t as f64 * 1000.0 / p as f64),
        _ => None,
    }
}

/// The dense-core variant: the seat district's built-up cells (≥ 1 000 people/km²) scaled so
/// its densest reach ~25 000 people/km² (Shenzhen's Futian is about 20 000), and AEDs added
/// there at the plan's 1.5 per 10 000 added people, copies of the district's own AEDs' kinds
/// placed where the added people are.
fn densify(cells: &mut [Cell], aeds: &mut Vec<AedEntry>, seed: u64) {
    let core = 0;
    let max = cells
        .iter()
        .filter(|c| c.district == core)
        .map(Cell::density)
        .fold(0.0, f64::max);
    if max <= 0.0 {
        return;
    }
    let factor = (25_000.0 / max).max(1.0);
    let mut added = Vec::new();
    for (k, c) in cells.iter_mut().enumerate() {
        if c.district == core && c.density() >= 1000.0 {
            let extra = c.population * (factor - 1.0);
            c.population += extra;
            added.push((k, extra));
        }
    }
    let total: f64 = added.iter().map(|x| x.1).sum();
    let cumulative = running(added.iter().map(|x| x.1));
    let templates: Vec<AedEntry> = aeds
        .iter()
        .filter(|a| {
            added
                .iter()
                .any(|(k, _)| cells[*k].pos.distance_m(&a.pos) < cells[*k].side_m)
        })
        .cloned()
        .collect();
    if templates.is_empty() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xde45e);
    let n = (total * 1.5 / 10_000.0).round() as usize;
    let first = aeds.iter().map(|a| a.id).max().unwrap_or(0) + 1;
    for next in first..first + n as i64 {
        let (k, _) = added[draw(&cumulative, &mut rng)];
        let c = cells[k];
        let mut a = templates[rng.gen_range(0..templates.len())].clone();
        a.id = next;
        a.pos = offset(
            c.pos,
            rng.gen_range(-0.5..0.5) * c.side_m,
            rng.gen_range(-0.5..0.5) * c.side_m,
        );
        aeds.push(a);
    }
}

/// One arrest, drawn from the seed and its number only.
#[derive(Debug, Clone)]
pub struct Arrest {
    pub at: DateTime<Utc>,
    pub patient: LatLon,
    /// People per km² where it happened.
    pub density: f64,
    pub district: usize,
    /// When the ambulance is there, seconds after the call.
    pub ems_s: f64,
    /// Rescuers on duty near the patient (id = index + 1) and where they are at that hour.
    pub on_duty: Vec<(i64, LatLon)>,
}

/// What the simulation draws arrests with.
#[derive(Debug, Clone, Copy)]
pub struct ArrestParams {
    pub seed: u64,
    /// Mean share of rescuers on duty (shaped by hour, [`ON_DUTY_BY_HOUR`]).
    pub on_duty: f64,
    /// Rescuers farther than this from the patient cannot be alerted by any policy simulated.
    pub reach_m: f64,
    pub ems_urban_s: f64,
    pub ems_rural_s: f64,
}

pub fn on_duty_share(mean: f64, hour: u32) -> f64 {
    let avg = ON_DUTY_BY_HOUR.iter().sum::<f64>() / 24.0;
    (mean * ON_DUTY_BY_HOUR[hour as usize % 24] / avg).clamp(0.0, 1.0)
}

pub fn arrest(w: &World, p: &ArrestParams, week0: DateTime<Utc>, n: usize) -> Arrest {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(p.seed, n as u64, u64::MAX));
    let at = week0 + Duration::minutes(rng.gen_range(0..7 * 24 * 60));
    let local = at.with_timezone(&w.tz);
    let weekday = !matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
    let daytime = (8..18).contains(&local.hour());
    let (patient, k) = if daytime && rng.gen_bool(PUBLIC_SHARE * 1.5) || rng.gen_bool(0.05) {
        w.day_place(&mut rng)
    } else {
        w.home(&mut rng)
    };
    let cell = w.cells[k];
    let density = cell.density();
    let median = if density >= URBAN_PER_KM2 {
        p.ems_urban_s
    } else {
        p.ems_rural_s
    };
    // Log-normal around the median (σ 0.35: a 90 % range of about 0.56–1.8 × the median).
    let ems_s = median * (0.35 * normal(&mut rng)).exp();
    let share = on_duty_share(p.on_duty, local.hour());
    let away = weekday && daytime;
    let buckets = if away {
        &w.day_buckets
    } else {
        &w.home_buckets
    };
    let mut on_duty: Vec<(i64, LatLon)> = buckets
        .near(patient, p.reach_m)
        .filter_map(|i| {
            let r = &w.rescuers[i as usize];
            let pos = if away { r.day } else { r.home };
            (pos.distance_m(&patient) <= p.reach_m).then_some((i64::from(i) + 1, pos))
        })
        .filter(|(id, _)| {
            // Whether a rescuer is on duty now depends on the arrest and the rescuer only.
            let mut r = ChaCha8Rng::seed_from_u64(mix(p.seed ^ 0x0d07, n as u64, *id as u64));
            r.gen_bool(share)
        })
        .collect();
    on_duty.sort_by_key(|x| x.0);
    Arrest {
        at,
        patient,
        density,
        district: cell.district,
        ems_s,
        on_duty,
    }
}

/// A rescuer's own walking pace, relative to the median of where they walk (log-normal,
/// σ 0.2: the GPS study's spread between brisk walkers and runners).
pub fn pace(seed: u64, r: i64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0x5eed, u64::MAX - 1, r as u64));
    (0.2 * normal(&mut rng)).exp()
}

/// A rescuer's own propensity to accept, with mean `accept`: some answer nearly always,
/// others rarely (uniform over `accept` ± min(accept, 1 − accept)).
pub fn propensity(seed: u64, r: i64, accept: f64) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0xacce, u64::MAX - 2, r as u64));
    let half = accept.min(1.0 - accept);
    (accept + half * rng.gen_range(-1.0..1.0)).clamp(0.0, 1.0)
}
