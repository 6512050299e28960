//! [`CoverageMap`]: for every cell of a [`Grid`], the soonest an AED that is usable at time t
//! can reach it, and whether that is within the budget — kept current one change at a time.
//!
//! Geometry and state are kept apart. Each AED's *links* (the cells it could reach within the
//! horizon, with the trip time to each) depend only on where it is and how it is installed;
//! whether it counts right now (readiness, access, opening hours at t) is one flag per AED.
//! A cell's best time is the minimum over its links to active AEDs, so a readiness change or an
//! opening-hours boundary recomputes only the cells that AED links to, and a full recompute is
//! one pass over the links.

use std::collections::HashMap;
use std::sync::Arc;

use aednet_core::aed::{Access, ReadinessStatus};
use aednet_core::hours::HoursState;
use aednet_core::LatLon;
use aednet_geoindex::{AedEntry, HoursPolicy, ReadinessFilter, WalkKind, WalkModel};
use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::grid::{Cell, Grid};
use crate::network::CellNetwork;

/// What "the AED reaches the cell" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Someone at the cell fetches the AED and brings it back (cell → AED → cell): the
    /// honest default, and what the caller's query ranks by.
    #[default]
    RoundTrip,
    /// The AED carried to the cell (someone already at the AED, or a rescuer who fetches it).
    OneWay,
    /// A plain straight-line radius (`radius_m`), as many studies count "within 100 m".
    Radius,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "round_trip" => Some(Mode::RoundTrip),
            "one_way" => Some(Mode::OneWay),
            "radius" => Some(Mode::Radius),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::RoundTrip => "round_trip",
            Mode::OneWay => "one_way",
            Mode::Radius => "radius",
        }
    }
}

/// How coverage is counted. Config section `[coverage]`; the walk model is `[walk]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    pub mode: Mode,
    /// The golden four minutes.
    pub budget_s: f64,
    /// Straight-line radius for [`Mode::Radius`].
    pub radius_m: f64,
    /// Times are reported up to this (the map shades 4–10 minutes); beyond it a cell has none.
    pub horizon_s: f64,
    pub readiness: ReadinessFilter,
    pub hours: HoursPolicy,
    /// Count `customers`/`private` AEDs (someone on site may let a rescuer in).
    pub include_restricted: bool,
    /// Walks on the walking network when one is loaded (`network`, the default), or the
    /// straight-line model (`straight_line`, to compare).
    #[serde(rename = "walk")]
    pub walk_on: WalkKind,
    #[serde(skip)]
    pub walk: WalkModel,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            mode: Mode::RoundTrip,
            budget_s: 240.0,
            radius_m: 100.0,
            horizon_s: 600.0,
            readiness: ReadinessFilter::NotKnownBad,
            hours: HoursPolicy::OpenOrUnknown,
            include_restricted: false,
            walk_on: WalkKind::Network,
            walk: WalkModel::default(),
        }
    }
}

impl Params {
    /// Names the bad field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let ok = |v: f64, lo: f64, hi: f64| v.is_finite() && v > lo && v <= hi;
        if !ok(self.budget_s, 0.0, 3600.0) {
            return Err((
                "budget_s",
                "budget_s must be between 0 and 3600 seconds".into(),
            ));
        }
        if !ok(self.radius_m, 0.0, 5000.0) {
            return Err((
                "radius_m",
                "radius_m must be between 0 and 5000 metres".into(),
            ));
        }
        if !ok(self.horizon_s, 0.0, 3600.0) {
            return Err((
                "horizon_s",
                "horizon_s must be between 0 and 3600 seconds".into(),
            ));
        }
        self.walk.validate().map_err(|m| ("walk", m))
    }

    /// Times are kept up to this; never below the budget.
    pub fn horizon(&self) -> f64 {
        self.horizon_s.max(self.budget_s)
    }

    /// No AED can link to a cell farther than this straight line: floors and cabinets only
    /// add time.
    pub fn reach_m(&self) -> f64 {
        let walk_m = self.horizon() * self.walk.speed_mps / self.walk.detour_factor;
        match self.mode {
            Mode::RoundTrip => walk_m / 2.0,
            Mode::OneWay => walk_m,
            Mode::Radius => walk_m.max(self.radius_m),
        }
    }

    /// Seconds for an AED installed so to reach a cell `d` metres away, in this mode.
    pub fn trip_s(&self, d: f64, indoor: Option<bool>, floor: Option<f64>, locked: bool) -> f64 {
        match self.mode {
            Mode::RoundTrip => self.walk.fetch_times(d, indoor, floor, locked).1,
            Mode::OneWay => self.walk.fetch_times(d, indoor, floor, locked).0,
            Mode::Radius => self.walk.walk_s(d),
        }
    }

    pub fn covers(&self, time_s: f64, d: f64) -> bool {
        match self.mode {
            Mode::Radius => d <= self.radius_m,
            _ => time_s <= self.budget_s,
        }
    }

    fn linked(&self, time_s: f64, d: f64) -> bool {
        match self.mode {
            Mode::Radius => d <= self.reach_m(),
            _ => time_s <= self.horizon(),
        }
    }

    /// Readiness and access: what does not change with the clock.
    pub fn eligible(&self, e: &AedEntry) -> bool {
        self.readiness.admits(e.status)
            && match e.access {
                Access::No => false,
                Access::Customers | Access::Private => self.include_restricted,
                Access::Yes | Access::Public | Access::Permissive | Access::Unknown => true,
            }
    }

    /// Whether opening hours let the AED count in a state.
    pub fn open_in(&self, state: HoursState) -> bool {
        matches!(
            (self.hours, state),
            (HoursPolicy::Any, _)
                | (_, HoursState::Open)
                | (HoursPolicy::OpenOrUnknown, HoursState::Unknown)
        )
    }
}

#[derive(Debug, Clone, Copy)]
struct Link {
    /// A cell index in a site's list, a site slot in a cell's list.
    idx: u32,
    time: f32,
    dist: f32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Best {
    time: f32,
    dist: f32,
    slot: u32,
    id: i64,
}

const NONE: Best = Best {
    time: f32::INFINITY,
    dist: f32::INFINITY,
    slot: u32::MAX,
    id: i64::MAX,
};

#[derive(Debug, Clone)]
struct Site {
    entry: AedEntry,
    links: Vec<Link>,
    eligible: bool,
    open: bool,
    next_change: Option<DateTime<Utc>>,
}

impl Site {
    fn active(&self) -> bool {
        self.eligible && self.open
    }
}

/// One cell as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellView {
    /// H3 index as a string.
    pub cell: String,
    pub time_s: Option<f64>,
    pub covered: bool,
    pub population: f64,
    pub aed_id: Option<i64>,
}

/// Coverage of a set of cells.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Summary {
    pub population: f64,
    pub covered_population: f64,
    /// Covered population / population; the covered share of cells where nobody is counted
    /// as living (no population known).
    pub share: f64,
    pub cells: usize,
    pub covered_cells: usize,
}

impl Summary {
    fn add(&mut self, c: &Cell, covered: bool) {
        self.population += c.population;
        self.cells += 1;
        if covered {
            self.covered_population += c.population;
            self.covered_cells += 1;
        }
    }
    fn finish(mut self) -> Self {
        self.share = if self.population > 0.0 {
            self.covered_population / self.population
        } else if self.cells > 0 {
            self.covered_cells as f64 / self.cells as f64
        } else {
            0.0
        };
        self
    }
}

/// One hour of the weekly profile.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HourShare {
    /// 0 = Monday 00:00–01:00 local … 167.
    pub hour: u32,
    /// The instant evaluated: half past the hour, local time.
    pub at: DateTime<Utc>,
    pub share: f64,
    /// If every usable AED were open around the clock.
    pub share_all_24_7: f64,
    pub covered_population: f64,
}

/// Cloning copies the per-cell state and links (milliseconds for 10^4 cells): the live
/// service answers long reads (a week's profile, a city's GeoJSON) from a copy so store events
/// never wait behind them.
#[derive(Debug, Clone)]
pub struct CoverageMap {
    grid: Arc<Grid>,
    params: Params,
    sites: Vec<Option<Site>>,
    slot_of: HashMap<i64, u32>,
    free: Vec<u32>,
    cell_links: Vec<Vec<Link>>,
    best: Vec<Best>,
    at: DateTime<Utc>,
    /// The walking network, when walks are measured on it.
    network: Option<Arc<CellNetwork>>,
}

impl CoverageMap {
    /// The map of `entries` on `grid` at `at`, straight-line walks.
    pub fn build(
        grid: Arc<Grid>,
        params: Params,
        entries: impl IntoIterator<Item = AedEntry>,
        at: DateTime<Utc>,
    ) -> Self {
        Self::build_on(grid, params, entries, at, None)
    }

    /// [`CoverageMap::build`] with walks on `network` (made for the same grid) when
    /// `params.walk_on` is `network`.
    pub fn build_on(
        grid: Arc<Grid>,
        params: Params,
        entries: impl IntoIterator<Item = AedEntry>,
        at: DateTime<Utc>,
        network: Option<Arc<CellNetwork>>,
    ) -> Self {
        let n = grid.len();
        let network =
            network.filter(|_| params.walk_on == WalkKind::Network && params.mode != Mode::Radius);
        let mut map = Self {
            network,
            grid,
            params,
            sites: Vec::new(),
            slot_of: HashMap::new(),
            free: Vec::new(),
            cell_links: vec![Vec::new(); n],
            best: vec![NONE; n],
            at,
        };
        for e in entries {
            if let Some(old) = map.slot_of.get(&e.id).copied() {
                map.unlink(old);
            }
            map.link(e);
        }
        map.recompute_all();
        map
    }

    pub fn grid(&self) -> &Arc<Grid> {
        &self.grid
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// How walks were measured: on the network only when one was given and asked for.
    pub fn walk_used(&self) -> WalkKind {
        if self.network.is_some() {
            WalkKind::Network
        } else {
            WalkKind::StraightLine
        }
    }

    pub fn network(&self) -> Option<&Arc<CellNetwork>> {
        self.network.as_ref()
    }

    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    pub fn aed_count(&self) -> usize {
        self.slot_of.len()
    }

    /// The AEDs on the map (for building another map of the same network).
    pub fn entries(&self) -> impl Iterator<Item = &AedEntry> {
        self.sites.iter().flatten().map(|s| &s.entry)
    }

    pub fn entry(&self, id: i64) -> Option<&AedEntry> {
        let slot = *self.slot_of.get(&id)?;
        self.sites[slot as usize].as_ref().map(|s| &s.entry)
    }

    /// Whether the AED counts at the map's time.
    pub fn is_active(&self, id: i64) -> bool {
        self.slot_of
            .get(&id)
            .and_then(|s| self.sites[*s as usize].as_ref())
            .is_some_and(Site::active)
    }

    fn link(&mut self, e: AedEntry) -> u32 {
        let p = &self.params;
        let mut links = Vec::new();
        let trips = crate::network::trips(
            &self.grid,
            p,
            self.network.as_deref(),
            e.pos,
            e.indoor,
            e.floor,
            e.cabinet_locked,
        );
        for (cell, t, d) in trips {
            if p.linked(t, d) {
                links.push(Link {
                    idx: cell,
                    time: t as f32,
                    dist: d as f32,
                });
            }
        }
        let eligible = p.eligible(&e);
        let s = e.schedule.at(self.at);
        let (open, next_change) = (p.open_in(s.state), s.next_change);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.sites.push(None);
                (self.sites.len() - 1) as u32
            }
        };
        for l in &links {
            self.cell_links[l.idx as usize].push(Link { idx: slot, ..*l });
        }
        self.slot_of.insert(e.id, slot);
        self.sites[slot as usize] = Some(Site {
            entry: e,
            links,
            eligible,
            open,
            next_change,
        });
        slot
    }

    /// Takes a site off the map; returns the cells it linked to.
    fn unlink(&mut self, slot: u32) -> Vec<u32> {
        let Some(site) = self.sites[slot as usize].take() else {
            return Vec::new();
        };
        self.slot_of.remove(&site.entry.id);
        self.free.push(slot);
        let cells: Vec<u32> = site.links.iter().map(|l| l.idx).collect();
        for &c in &cells {
            self.cell_links[c as usize].retain(|l| l.idx != slot);
        }
        cells
    }

    fn best_for(&self, cell: usize) -> Best {
        let mut best = NONE;
        for l in &self.cell_links[cell] {
            let Some(site) = &self.sites[l.idx as usize] else {
                continue;
            };
            if !site.active() {
                continue;
            }
            let id = site.entry.id;
            if (l.time, id) < (best.time, best.id) {
                best = Best {
                    time: l.time,
                    dist: l.dist,
                    slot: l.idx,
                    id,
                };
            }
        }
        best
    }

    fn recompute_all(&mut self) {
        for c in 0..self.best.len() {
            self.best[c] = self.best_for(c);
        }
    }

    /// Recomputes `cells`; returns those whose time, covering AED or coverage changed.
    fn recompute(&mut self, mut cells: Vec<u32>) -> Vec<u32> {
        cells.sort_unstable();
        cells.dedup();
        let mut changed = Vec::with_capacity(cells.len());
        for c in cells {
            let b = self.best_for(c as usize);
            let old = std::mem::replace(&mut self.best[c as usize], b);
            if old.time != b.time || old.id != b.id {
                changed.push(c);
            }
        }
        changed
    }

    /// Adds or replaces an AED (moved, re-tagged, new hours). Returns the changed cells.
    pub fn upsert(&mut self, e: AedEntry) -> Vec<u32> {
        let mut cells = match self.slot_of.get(&e.id).copied() {
            Some(slot) => self.unlink(slot),
            None => Vec::new(),
        };
        let slot = self.link(e);
        if let Some(s) = &self.sites[slot as usize] {
            cells.extend(s.links.iter().map(|l| l.idx));
        }
        self.recompute(cells)
    }

    pub fn remove(&mut self, id: i64) -> Vec<u32> {
        match self.slot_of.get(&id).copied() {
            Some(slot) => {
                let cells = self.unlink(slot);
                self.recompute(cells)
            }
            None => Vec::new(),
        }
    }

    /// A readiness change: only the AED's own cells are looked at, and only if it started or
    /// stopped counting.
    pub fn set_status(&mut self, id: i64, status: ReadinessStatus) -> Vec<u32> {
        let Some(slot) = self.slot_of.get(&id).copied() else {
            return Vec::new();
        };
        let params = self.params;
        let Some(site) = self.sites[slot as usize].as_mut() else {
            return Vec::new();
        };
        let was = site.active();
        site.entry.status = status;
        site.eligible = params.eligible(&site.entry);
        if site.active() == was {
            return Vec::new();
        }
        let cells = site.links.iter().map(|l| l.idx).collect();
        self.recompute(cells)
    }

    /// Moves the map's clock to `t`. Only AEDs whose opening-hours span ended by `t` are
    /// re-evaluated (all of them if the clock went back); returns the changed cells.
    pub fn advance(&mut self, t: DateTime<Utc>) -> Vec<u32> {
        let back = t < self.at;
        self.at = t;
        let params = self.params;
        let mut cells = Vec::new();
        for site in self.sites.iter_mut().flatten() {
            if !back && site.next_change.is_none_or(|c| c > t) {
                continue;
            }
            let was = site.active();
            let s = site.entry.schedule.at(t);
            site.open = params.open_in(s.state);
            site.next_change = s.next_change;
            if site.active() != was {
                cells.extend(site.links.iter().map(|l| l.idx));
            }
        }
        self.recompute(cells)
    }

    /// Full recompute at `t`: every AED's hours re-evaluated, every cell recomputed (what
    /// [`CoverageMap::advance`] avoids; kept for benchmarks and as the reference).
    pub fn refresh(&mut self, t: DateTime<Utc>) {
        self.at = t;
        let params = self.params;
        for site in self.sites.iter_mut().flatten() {
            let s = site.entry.schedule.at(t);
            site.open = params.open_in(s.state);
            site.next_change = s.next_change;
            site.eligible = params.eligible(&site.entry);
        }
        self.recompute_all();
    }

    /// The earliest instant after the map's time at which some AED opens or closes: when to
    /// call [`CoverageMap::advance`] next.
    pub fn next_change(&self) -> Option<DateTime<Utc>> {
        if self.params.hours == HoursPolicy::Any {
            return None;
        }
        self.sites
            .iter()
            .flatten()
            .filter_map(|s| s.next_change)
            .min()
    }

    pub fn covered(&self, cell: u32) -> bool {
        let b = &self.best[cell as usize];
        b.slot != u32::MAX && self.params.covers(f64::from(b.time), f64::from(b.dist))
    }

    /// Best time to the cell, if an AED reaches it within the horizon.
    pub fn time_s(&self, cell: u32) -> Option<f64> {
        let b = &self.best[cell as usize];
        (b.slot != u32::MAX).then(|| (f64::from(b.time) * 10.0).round() / 10.0)
    }

    pub fn best_aed(&self, cell: u32) -> Option<i64> {
        let b = &self.best[cell as usize];
        (b.slot != u32::MAX).then_some(b.id)
    }

    pub fn view(&self, cell: u32) -> CellView {
        let c = &self.grid.cells[cell as usize];
        CellView {
            cell: c.cell.to_string(),
            time_s: self.time_s(cell),
            covered: self.covered(cell),
            population: c.population,
            aed_id: self.best_aed(cell),
        }
    }

    pub fn summary(&self, keep: impl Fn(&Cell) -> bool) -> Summary {
        let mut s = Summary::default();
        for (i, c) in self.grid.cells.iter().enumerate() {
            if keep(c) {
                s.add(c, self.covered(i as u32));
            }
        }
        s.finish()
    }

    /// How many usable AEDs cover each cell now.
    pub fn cover_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.grid.len()];
        for s in self.sites.iter().flatten().filter(|s| s.active()) {
            for l in &s.links {
                if self.params.covers(f64::from(l.time), f64::from(l.dist)) {
                    counts[l.idx as usize] += 1;
                }
            }
        }
        counts
    }

    /// The cells an AED covers (within the budget), whether or not it counts now.
    pub fn cover_set(&self, id: i64) -> Vec<u32> {
        let Some(site) = self
            .slot_of
            .get(&id)
            .and_then(|s| self.sites[*s as usize].as_ref())
        else {
            return Vec::new();
        };
        site.links
            .iter()
            .filter(|l| self.params.covers(f64::from(l.time), f64::from(l.dist)))
            .map(|l| l.idx)
            .collect()
    }

    /// The cells a new unit at `pos` would cover: outdoors, ground level, unlocked cabinet.
    pub fn cover_set_at(&self, pos: LatLon) -> Vec<u32> {
        let p = &self.params;
        crate::network::trips(
            &self.grid,
            p,
            self.network.as_deref(),
            pos,
            Some(false),
            None,
            false,
        )
        .into_iter()
        .filter(|&(_, t, d)| p.covers(t, d))
        .map(|(c, _, _)| c)
        .collect()
    }

    /// The instants of the week containing the map's time, in `tz`: half past each hour from
    /// Monday 00:00 local (168 of them; a skipped hour at a DST change is taken an hour later).
    pub fn week_instants(&self, tz: Tz) -> Vec<DateTime<Utc>> {
        let local = self.at.with_timezone(&tz).date_naive();
        let monday = local - Duration::days(i64::from(local.weekday().num_days_from_monday()));
        let start = monday.and_time(NaiveTime::from_hms_opt(0, 30, 0).unwrap_or_default());
        (0..168)
            .map(|h| {
                let naive = start + Duration::hours(h);
                tz.from_local_datetime(&naive)
                    .earliest()
                    .or_else(|| {
                        tz.from_local_datetime(&(naive + Duration::hours(1)))
                            .earliest()
                    })
                    .map_or_else(|| naive.and_utc(), |d| d.with_timezone(&Utc))
            })
            .collect()
    }

    /// Coverage for each hour of the week in `tz`, for groups of cells (`group` gives a cell's
    /// group or `None` to leave it out): one `Vec` of 168 hours per group. Hours are read
    /// straight from the rules (not the span caches shared with live queries, which a sweep
    /// over a week would thrash).
    pub fn weekly(
        &self,
        tz: Tz,
        groups: usize,
        group: impl Fn(&Cell) -> Option<usize>,
    ) -> Vec<Vec<HourShare>> {
        let p = &self.params;
        let cell_group: Vec<Option<usize>> = self.grid.cells.iter().map(&group).collect();
        let mut pop = vec![0.0; groups];
        let mut cells = vec![0usize; groups];
        for (c, g) in self.grid.cells.iter().zip(&cell_group) {
            if let Some(g) = g {
                pop[*g] += c.population;
                cells[*g] += 1;
            }
        }
        let share = |g: usize, covered_pop: f64, covered_cells: usize| {
            if pop[g] > 0.0 {
                covered_pop / pop[g]
            } else if cells[g] > 0 {
                covered_cells as f64 / cells[g] as f64
            } else {
                0.0
            }
        };
        let sweep = |open: &dyn Fn(&Site) -> bool| -> (Vec<f64>, Vec<usize>) {
            let mut covered = vec![false; self.grid.len()];
            for s in self.sites.iter().flatten() {
                if !s.eligible || !open(s) {
                    continue;
                }
                for l in &s.links {
                    if p.covers(f64::from(l.time), f64::from(l.dist)) {
                        covered[l.idx as usize] = true;
                    }
                }
            }
            let (mut cp, mut cc) = (vec![0.0; groups], vec![0usize; groups]);
            for (i, cov) in covered.iter().enumerate() {
                if let (true, Some(g)) = (*cov, cell_group[i]) {
                    cp[g] += self.grid.cells[i].population;
                    cc[g] += 1;
                }
            }
            (cp, cc)
        };
        let (all_p, all_c) = sweep(&|_| true);
        let mut out = vec![Vec::with_capacity(168); groups];
        for (h, t) in self.week_instants(tz).into_iter().enumerate() {
            let mut by_schedule: HashMap<*const aednet_geoindex::Schedule, bool> = HashMap::new();
            let open = |s: &Site| {
                *by_schedule
                    .entry(Arc::as_ptr(&s.entry.schedule))
                    .or_insert_with(|| p.open_in(s.entry.schedule.hours().state(t)))
            };
            // The closure needs mutable access to the cache: wrap it.
            let cache = std::cell::RefCell::new(open);
            let (cp, cc) = sweep(&|s| (cache.borrow_mut())(s));
            for g in 0..groups {
                out[g].push(HourShare {
                    hour: h as u32,
                    at: t,
                    share: share(g, cp[g], cc[g]),
                    share_all_24_7: share(g, all_p[g], all_c[g]),
                    covered_population: cp[g],
                });
            }
        }
        out
    }
}
