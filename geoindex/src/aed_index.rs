//! The AED R-tree, its H3 cell map, and the caller's query: the k AEDs that can be fetched and
//! brought back soonest, with the filters a caller needs.

use std::collections::HashMap;
use std::sync::Arc;

use aednet_core::aed::{Access, ReadinessStatus};
use aednet_core::geo_util::LatLon;
use aednet_core::hours::HoursState;
use chrono::{DateTime, Utc};
use h3o::{CellIndex, LatLng, Resolution};
use rstar::{Envelope, RTree, SelectionFunction, AABB};
use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;
use crate::sphere::{bearing_deg, chord2_for_distance, distance_for_chord2, Located};
use crate::walk::WalkModel;

/// Resolution of the AED cell map: res 9 cells are ~0.1 km² (edge ~200 m), the scale of a
/// 4-minute walk's neighbourhood.
pub const CELL_RES: Resolution = Resolution::Nine;

/// What a caller is told about an AED besides distance and time. Shared, not copied, between
/// index versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AedDetail {
    pub name: Option<String>,
    pub address: Option<String>,
    pub operator: Option<String>,
    /// Raw OSM `level` ("2", "-1", "0;1").
    pub level: Option<String>,
    pub location_description: Option<String>,
    pub district_id: Option<i64>,
    /// Where the AED lies on the walking network, found on the first query that needed it.
    #[serde(skip)]
    pub snap: SnapCache,
}

/// An AED's snap to the walking network, remembered per graph and position: snapping costs a
/// few microseconds of R-tree search, and a caller's query measures several candidates.
/// Not data: clones start empty-handed only if the source was, and equality ignores it.
#[derive(Debug, Default)]
pub struct SnapCache(parking_lot::Mutex<Option<CachedSnap>>);

#[derive(Debug, Clone, Copy)]
struct CachedSnap {
    graph: u64,
    pos: LatLon,
    max_m: f64,
    snap: Option<aednet_routing::Snap>,
}

impl SnapCache {
    /// `pos` snapped on `graph` with `opts`, from the cache when it was the same question.
    pub fn get(
        &self,
        graph: &aednet_routing::Graph,
        pos: LatLon,
        opts: &aednet_routing::SnapOptions,
    ) -> Option<aednet_routing::Snap> {
        let same = |c: &CachedSnap| c.graph == graph.id() && c.pos == pos && c.max_m == opts.max_m;
        if let Some(c) = self.0.lock().as_ref().filter(|c| same(c)) {
            return c.snap;
        }
        let snap = graph.snap(pos, opts);
        *self.0.lock() = Some(CachedSnap {
            graph: graph.id(),
            pos,
            max_m: opts.max_m,
            snap,
        });
        snap
    }
}

impl Clone for SnapCache {
    fn clone(&self) -> Self {
        SnapCache(parking_lot::Mutex::new(*self.0.lock()))
    }
}

impl PartialEq for SnapCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// What the index keeps per AED: enough to filter and rank without touching the store.
#[derive(Debug, Clone)]
pub struct AedEntry {
    pub id: i64,
    pub pos: LatLon,
    pub access: Access,
    pub status: ReadinessStatus,
    pub indoor: Option<bool>,
    /// Floors to climb (positive) or descend (negative), parsed from `level`.
    pub floor: Option<f64>,
    pub cabinet_locked: bool,
    pub schedule: Arc<Schedule>,
    pub detail: Arc<AedDetail>,
}

/// The first number in an OSM `level` value ("2", "-1", "0;1", "1.5"), if any.
pub fn parse_floor(level: Option<&str>) -> Option<f64> {
    level?
        .split([';', ','])
        .next()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && f.abs() < 200.0)
}

/// Which readiness states a caller may be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadinessFilter {
    /// Everything not known to be bad: ready, degraded and unknown (most AEDs have no
    /// telemetry; excluding them would hide most of the network).
    #[default]
    NotKnownBad,
    ReadyOrDegraded,
    Ready,
    /// Every state (maintenance and planning views).
    Any,
}

impl ReadinessFilter {
    pub fn admits(self, s: ReadinessStatus) -> bool {
        match self {
            ReadinessFilter::NotKnownBad => !s.is_known_bad() && s != ReadinessStatus::CabinetOpen,
            ReadinessFilter::ReadyOrDegraded => {
                matches!(s, ReadinessStatus::Ready | ReadinessStatus::Degraded)
            }
            ReadinessFilter::Ready => s == ReadinessStatus::Ready,
            ReadinessFilter::Any => true,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "not_known_bad" => Some(Self::NotKnownBad),
            "ready_or_degraded" => Some(Self::ReadyOrDegraded),
            "ready" => Some(Self::Ready),
            "any" => Some(Self::Any),
            _ => None,
        }
    }
}

/// What to do with opening hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoursPolicy {
    /// Open at the query time, or hours unknown/malformed (flagged in the answer): the default,
    /// because most registered AEDs have no recorded hours.
    #[default]
    OpenOrUnknown,
    /// Only AEDs whose recorded hours say open.
    OpenOnly,
    /// Ignore hours (planning views; the answer still says open/closed).
    Any,
}

#[derive(Debug, Clone)]
pub struct Filters {
    pub open_at: DateTime<Utc>,
    pub readiness: ReadinessFilter,
    /// Include `customers`/`private` AEDs (someone on site may let a rescuer in).
    pub include_restricted: bool,
    pub hours: HoursPolicy,
    /// Only indoor (`Some(true)`) or only outdoor (`Some(false)`) AEDs.
    pub indoor: Option<bool>,
    pub max_distance_m: Option<f64>,
}

impl Filters {
    pub fn caller_defaults(open_at: DateTime<Utc>) -> Self {
        Self {
            open_at,
            readiness: ReadinessFilter::default(),
            include_restricted: false,
            hours: HoursPolicy::default(),
            indoor: None,
            max_distance_m: None,
        }
    }

    /// Whether the hours could admit `e` at all: open now (still open on arrival is checked
    /// once the walk is known), or unknown hours where those count.
    fn may_be_open(&self, e: &AedEntry) -> bool {
        matches!(
            (self.hours, e.schedule.at(self.open_at).state),
            (HoursPolicy::Any, _)
                | (_, HoursState::Open)
                | (HoursPolicy::OpenOrUnknown, HoursState::Unknown)
        )
    }

    /// Everything but opening hours: cheap checks first.
    fn admits_static(&self, e: &AedEntry) -> bool {
        if !self.readiness.admits(e.status) {
            return false;
        }
        if self.indoor.is_some_and(|want| e.indoor != Some(want)) {
            return false;
        }
        match e.access {
            Access::No => false,
            Access::Customers | Access::Private => self.include_restricted,
            Access::Yes | Access::Public | Access::Permissive | Access::Unknown => true,
        }
    }
}

/// One answer: an AED with the times a caller needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Nearest {
    pub id: i64,
    pub lat: f64,
    pub lon: f64,
    pub distance_m: f64,
    pub bearing_deg: f64,
    /// Caller to the AED with the AED in hand (walk, floors, cabinet).
    pub one_way_s: f64,
    /// Caller → AED → patient.
    pub round_trip_s: f64,
    pub hours: HoursState,
    /// Next opening-hours change after the query time: closing time if open, opening time if
    /// closed.
    pub next_change: Option<DateTime<Utc>>,
    /// Open now, but closes before the caller is back with it (it can still be fetched).
    pub closes_before_return: bool,
    pub status: ReadinessStatus,
    pub access: Access,
    pub indoor: Option<bool>,
    pub cabinet_locked: bool,
    /// How the walk was measured: along the walking network, or the straight-line model
    /// (no network loaded, the point or the AED off it, or not connected to it).
    pub walk: WalkKind,
    /// The walk's length one way, metres (the network's, or straight line × detour factor).
    pub walk_m: f64,
    /// The walk to the AED (back is the same way), with `include=route`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<LineString>,
    #[serde(flatten)]
    pub detail: Arc<AedDetail>,
}

/// How a walk was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalkKind {
    Network,
    #[default]
    StraightLine,
}

/// A GeoJSON LineString geometry (`[lon, lat]` positions).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineString {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub coordinates: Vec<[f64; 2]>,
}

impl LineString {
    pub fn new(points: impl IntoIterator<Item = LatLon>) -> Self {
        Self {
            kind: "LineString",
            coordinates: points.into_iter().map(|p| [p.lon, p.lat]).collect(),
        }
    }
}

/// A walk to one AED as a [`Legs`] oracle measured it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Leg {
    /// Along the network: seconds and metres one way.
    Network { walk_s: f64, walk_m: f64 },
    /// The straight-line model applies to this AED.
    StraightLine,
    /// Longer than the limit asked for (so it cannot be among the answers).
    Beyond,
}

/// Measures walks from the query point to candidate AEDs (the walking network, see
/// `crate::network`); the straight-line model is the oracle that always says `StraightLine`.
pub trait Legs {
    /// The walk to `e`, `straight_m` away; only needed if at most `limit_s` seconds one way
    /// (beyond that, [`Leg::Beyond`] is as good as the exact figure).
    fn leg(&mut self, e: &AedEntry, straight_m: f64, limit_s: f64) -> Leg;
}

/// Decides whether `e` answers the query and, if so, builds the answer. The tree search and the
/// brute-force reference in the tests both use it, so they differ only in search.
pub fn evaluate(
    e: &AedEntry,
    at: LatLon,
    distance_m: f64,
    filters: &Filters,
    walk: &WalkModel,
) -> Option<Nearest> {
    if !filters.admits_static(e) {
        return None;
    }
    evaluate_leg(e, at, distance_m, filters, walk, Leg::StraightLine)
}

/// [`evaluate`] with the walk measured by `leg` (`Beyond` answers nothing). Does not check
/// the static filters: the caller did, before paying for the walk.
pub fn evaluate_leg(
    e: &AedEntry,
    at: LatLon,
    distance_m: f64,
    filters: &Filters,
    walk: &WalkModel,
    leg: Leg,
) -> Option<Nearest> {
    let (kind, walk_m, (one_way_s, round_trip_s)) = match leg {
        Leg::Beyond => return None,
        Leg::StraightLine => (
            WalkKind::StraightLine,
            distance_m * walk.detour_factor,
            walk.fetch_times(distance_m, e.indoor, e.floor, e.cabinet_locked),
        ),
        Leg::Network { walk_s, walk_m } => (
            WalkKind::Network,
            walk_m,
            walk.fetch_times_walking(walk_s, e.indoor, e.floor, e.cabinet_locked),
        ),
    };
    let s = e.schedule.at(filters.open_at);
    let arrive = filters.open_at + secs(one_way_s);
    let back = filters.open_at + secs(round_trip_s);
    let admitted = match (filters.hours, s.state) {
        (HoursPolicy::Any, _) => true,
        // Open, and still open when the caller gets there.
        (_, HoursState::Open) => s.next_change.is_none_or(|c| c > arrive),
        (HoursPolicy::OpenOrUnknown, HoursState::Unknown) => true,
        _ => false,
    };
    if !admitted {
        return None;
    }
    Some(Nearest {
        id: e.id,
        lat: e.pos.lat,
        lon: e.pos.lon,
        distance_m,
        bearing_deg: bearing_deg(at, e.pos),
        one_way_s,
        round_trip_s,
        hours: s.state,
        next_change: s.next_change,
        closes_before_return: s.state == HoursState::Open
            && s.next_change.is_some_and(|c| c <= back),
        status: e.status,
        access: e.access,
        indoor: e.indoor,
        cabinet_locked: e.cabinet_locked,
        walk: kind,
        walk_m,
        route: None,
        detail: e.detail.clone(),
    })
}

fn secs(s: f64) -> chrono::Duration {
    chrono::Duration::milliseconds((s * 1000.0).round() as i64)
}

/// Selects the one item with `id` at `xyz` (removal of one of several items at a point).
struct ExactItem {
    id: i64,
    xyz: [f64; 3],
}

impl<T> SelectionFunction<Located<T>> for ExactItem {
    fn should_unpack_parent(&self, envelope: &AABB<[f64; 3]>) -> bool {
        envelope.contains_point(&self.xyz)
    }
    fn should_unpack_leaf(&self, leaf: &Located<T>) -> bool {
        leaf.id == self.id && leaf.xyz == self.xyz
    }
}

/// Removes the item with `id` at `xyz` from `tree`.
pub(crate) fn remove_exact<T>(
    tree: &mut RTree<Located<T>>,
    id: i64,
    xyz: [f64; 3],
) -> Option<Located<T>> {
    tree.remove_with_selection_function(ExactItem { id, xyz })
}

fn cell_of(pos: LatLon) -> Option<CellIndex> {
    LatLng::new(pos.lat, pos.lon)
        .ok()
        .map(|ll| ll.to_cell(CELL_RES))
}

/// The AED index: an R-tree on the unit sphere, an id map for O(log n) updates, and the H3
/// cell map used by coverage and dispatch.
#[derive(Debug, Default)]
pub struct AedIndex {
    tree: RTree<Located<AedEntry>>,
    /// id → position, so an update or delete finds the old entry without a scan.
    by_id: HashMap<i64, [f64; 3]>,
    cells: HashMap<CellIndex, Vec<i64>>,
}

impl AedIndex {
    /// Bulk build (sort-tile-recursive packing): much faster than repeated inserts and gives a
    /// better tree. Later entries with the same id replace earlier ones.
    pub fn build(entries: Vec<AedEntry>) -> Self {
        let mut by_id = HashMap::with_capacity(entries.len());
        let mut located: Vec<Located<AedEntry>> = Vec::with_capacity(entries.len());
        for e in entries {
            let l = Located::new(e.id, e.pos, e);
            by_id.insert(l.id, l.xyz);
            located.push(l);
        }
        if located.len() != by_id.len() {
            // Duplicate ids: keep the last of each.
            let mut seen = std::collections::HashSet::with_capacity(by_id.len());
            located.reverse();
            located.retain(|l| seen.insert(l.id));
        }
        // The cell map is built on another core while the tree is packed.
        let pts: Vec<(i64, LatLon)> = located.iter().map(|l| (l.id, l.item.pos)).collect();
        let cells = std::thread::spawn(move || {
            let mut cells: HashMap<CellIndex, Vec<i64>> = HashMap::new();
            for (id, pos) in pts {
                if let Some(c) = cell_of(pos) {
                    cells.entry(c).or_default().push(id);
                }
            }
            cells
        });
        let tree = RTree::bulk_load(located);
        let cells = cells.join().unwrap_or_default();
        Self { tree, by_id, cells }
    }

    pub fn len(&self) -> usize {
        self.tree.size()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.size() == 0
    }

    pub fn get(&self, id: i64) -> Option<&AedEntry> {
        let xyz = *self.by_id.get(&id)?;
        self.tree
            .locate_all_at_point(xyz)
            .find(|l| l.id == id)
            .map(|l| &l.item)
    }

    /// Inserts or replaces the AED with `e.id`: O(log n).
    pub fn upsert(&mut self, e: AedEntry) {
        self.remove(e.id);
        let l = Located::new(e.id, e.pos, e);
        self.by_id.insert(l.id, l.xyz);
        if let Some(c) = cell_of(l.item.pos) {
            self.cells.entry(c).or_default().push(l.id);
        }
        self.tree.insert(l);
    }

    /// Changes only the readiness of an AED, if indexed.
    pub fn set_status(&mut self, id: i64, status: ReadinessStatus) -> bool {
        let Some(xyz) = self.by_id.get(&id).copied() else {
            return false;
        };
        match self.tree.locate_all_at_point_mut(xyz).find(|l| l.id == id) {
            Some(l) => {
                l.item.status = status;
                true
            }
            None => false,
        }
    }

    pub fn remove(&mut self, id: i64) -> Option<AedEntry> {
        let xyz = self.by_id.remove(&id)?;
        let removed = remove_exact(&mut self.tree, id, xyz)?;
        if let Some(c) = cell_of(removed.item.pos) {
            if let Some(ids) = self.cells.get_mut(&c) {
                ids.retain(|&i| i != id);
                if ids.is_empty() {
                    self.cells.remove(&c);
                }
            }
        }
        Some(removed.item)
    }

    /// The `k` AEDs passing `filters` that can be brought to the patient at `at` soonest,
    /// ranked by round trip (ties by distance, then id).
    ///
    /// The tree yields AEDs by distance; the round trip of an AED at distance d is at least the
    /// plain walk there and back, so the walk stops once that bound reaches the k-th best round
    /// trip found — extra time for floors or a locked cabinet can reorder nearby AEDs, never
    /// promote one beyond the bound.
    pub fn nearest(
        &self,
        at: LatLon,
        k: usize,
        filters: &Filters,
        walk: &WalkModel,
    ) -> Vec<Nearest> {
        let mut best: Vec<Nearest> = Vec::with_capacity(k + 1);
        if k == 0 {
            return best;
        }
        let q = crate::sphere::to_xyz(at);
        let limit = filters.max_distance_m.map(chord2_for_distance);
        for (l, d2) in self.tree.nearest_neighbor_iter_with_distance_2(q) {
            if limit.is_some_and(|lim| d2 > lim) {
                break;
            }
            let d = distance_for_chord2(d2);
            if best.len() == k && walk.round_trip_lower_bound(d) > best[k - 1].round_trip_s {
                break;
            }
            if let Some(n) = evaluate(&l.item, at, d, filters, walk) {
                let pos = best.partition_point(|b| rank(b) <= rank(&n));
                if pos < k {
                    best.insert(pos, n);
                    best.truncate(k);
                }
            }
        }
        best
    }

    /// [`AedIndex::nearest`] with walks measured by `legs` (the walking network). Exact: the
    /// tree yields AEDs by straight-line distance, and no walk is shorter than the straight
    /// line ([`WalkModel::network_round_trip_lower_bound`]), so the search stops once that
    /// bound passes the k-th best round trip; each candidate's walk is asked only up to half
    /// of that round trip.
    pub fn nearest_with(
        &self,
        at: LatLon,
        k: usize,
        filters: &Filters,
        walk: &WalkModel,
        legs: &mut dyn Legs,
    ) -> Vec<Nearest> {
        let mut best: Vec<Nearest> = Vec::with_capacity(k + 1);
        if k == 0 {
            return best;
        }
        let q = crate::sphere::to_xyz(at);
        let limit = filters.max_distance_m.map(chord2_for_distance);
        for (l, d2) in self.tree.nearest_neighbor_iter_with_distance_2(q) {
            if limit.is_some_and(|lim| d2 > lim) {
                break;
            }
            let d = distance_for_chord2(d2);
            let kth = (best.len() == k).then(|| best[k - 1].round_trip_s);
            if kth.is_some_and(|rt| walk.network_round_trip_lower_bound(d) > rt) {
                break;
            }
            // Known bad, restricted or closed now: rejected before its walk is measured (the
            // walk only decides whether an open one still is when the caller gets there).
            if !filters.admits_static(&l.item) || !filters.may_be_open(&l.item) {
                continue;
            }
            let leg = legs.leg(&l.item, d, kth.map_or(f64::INFINITY, |rt| rt / 2.0));
            if let Some(n) = evaluate_leg(&l.item, at, d, filters, walk, leg) {
                let pos = best.partition_point(|b| rank(b) <= rank(&n));
                if pos < k {
                    best.insert(pos, n);
                    best.truncate(k);
                }
            }
        }
        best
    }

    /// AED ids in the H3 cell (resolution [`CELL_RES`]).
    pub fn in_cell(&self, cell: CellIndex) -> &[i64] {
        self.cells.get(&cell).map_or(&[], Vec::as_slice)
    }

    /// AED ids within `k` rings of the cell containing `at`.
    pub fn in_disk(&self, at: LatLon, k: u32) -> Vec<i64> {
        let Some(c) = cell_of(at) else {
            return Vec::new();
        };
        c.grid_disk::<Vec<_>>(k)
            .into_iter()
            .flat_map(|c| self.in_cell(c).iter().copied())
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &AedEntry> {
        self.tree.iter().map(|l| &l.item)
    }
}

/// Ranking key: round trip, then distance, then id (a total, stable order).
pub fn rank(n: &Nearest) -> (OrdF64, OrdF64, i64) {
    (OrdF64(n.round_trip_s), OrdF64(n.distance_m), n.id)
}

/// f64 ordered by `total_cmp`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrdF64(pub f64);

impl Eq for OrdF64 {}
impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
