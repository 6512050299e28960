//! The AED R-tree and its filtered k-nearest query.

use std::sync::Arc;

use aednet_core::aed::{Access, ReadinessStatus};
use aednet_core::geo_util::LatLon;
use aednet_core::hours::{Hours, HoursState};
use chrono::{DateTime, Utc};
use rstar::{PointDistance, RTree, RTreeObject, AABB};

use crate::sphere::{bearing_deg, chord2_for_distance, distance_for_chord2, to_xyz};

/// What the index keeps per AED: enough to filter and rank without touching the store.
#[derive(Debug, Clone)]
pub struct AedEntry {
    pub id: i64,
    pub pos: LatLon,
    xyz: [f64; 3],
    pub access: Access,
    pub status: ReadinessStatus,
    pub indoor: Option<bool>,
    pub cabinet_locked: bool,
    /// Compiled once; many AEDs share the same schedule text but each has its own zone/holidays.
    pub hours: Arc<Hours>,
}

impl AedEntry {
    pub fn new(
        id: i64,
        pos: LatLon,
        access: Access,
        status: ReadinessStatus,
        indoor: Option<bool>,
        cabinet_locked: bool,
        hours: Arc<Hours>,
    ) -> Self {
        Self {
            id,
            pos,
            xyz: to_xyz(pos),
            access,
            status,
            indoor,
            cabinet_locked,
            hours,
        }
    }
}

impl RTreeObject for AedEntry {
    type Envelope = AABB<[f64; 3]>;
    fn envelope(&self) -> Self::Envelope {
        AABB::from_point(self.xyz)
    }
}

impl PointDistance for AedEntry {
    fn distance_2(&self, p: &[f64; 3]) -> f64 {
        (0..3).map(|i| (self.xyz[i] - p[i]).powi(2)).sum()
    }
}

/// Which readiness states a caller may be sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadinessFilter {
    /// Everything not known to be bad: ready, degraded and unknown (most AEDs have no
    /// telemetry; excluding them would hide most of the network).
    #[default]
    NotKnownBad,
    ReadyOrDegraded,
    Ready,
}

impl ReadinessFilter {
    pub fn admits(self, s: ReadinessStatus) -> bool {
        match self {
            ReadinessFilter::NotKnownBad => !s.is_known_bad() && s != ReadinessStatus::CabinetOpen,
            ReadinessFilter::ReadyOrDegraded => {
                matches!(s, ReadinessStatus::Ready | ReadinessStatus::Degraded)
            }
            ReadinessFilter::Ready => s == ReadinessStatus::Ready,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Filters {
    pub open_at: DateTime<Utc>,
    pub readiness: ReadinessFilter,
    /// Include `customers`/`private` AEDs (someone on site may let a rescuer in).
    pub include_restricted: bool,
    /// Include AEDs whose hours are not recorded or do not parse.
    pub include_unknown_hours: bool,
    pub max_distance_m: Option<f64>,
}

impl Filters {
    pub fn caller_defaults(open_at: DateTime<Utc>) -> Self {
        Self {
            open_at,
            readiness: ReadinessFilter::default(),
            include_restricted: false,
            include_unknown_hours: true,
            max_distance_m: None,
        }
    }

    pub fn admits(&self, e: &AedEntry) -> bool {
        if !self.readiness.admits(e.status) {
            return false;
        }
        let access_ok = match e.access {
            Access::No => false,
            Access::Customers | Access::Private => self.include_restricted,
            Access::Yes | Access::Public | Access::Permissive | Access::Unknown => true,
        };
        access_ok
            && match e.hours.state(self.open_at) {
                HoursState::Open => true,
                HoursState::Closed => false,
                HoursState::Unknown => self.include_unknown_hours,
            }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Nearest {
    pub id: i64,
    pub distance_m: f64,
    pub bearing_deg: f64,
}

#[derive(Debug, Default)]
pub struct AedIndex {
    tree: RTree<AedEntry>,
}

impl AedIndex {
    /// Bulk build (sort-tile-recursive packing): much faster than repeated inserts.
    pub fn build(entries: Vec<AedEntry>) -> Self {
        Self {
            tree: RTree::bulk_load(entries),
        }
    }

    pub fn len(&self) -> usize {
        self.tree.size()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.size() == 0
    }

    pub fn insert(&mut self, e: AedEntry) {
        self.remove(e.id, e.pos);
        self.tree.insert(e);
    }

    /// Removes the entry with `id` at `pos` (its last indexed position).
    pub fn remove(&mut self, id: i64, pos: LatLon) -> Option<AedEntry> {
        let xyz = to_xyz(pos);
        let env = AABB::from_point(xyz);
        let found = self
            .tree
            .locate_in_envelope(&env)
            .find(|e| e.id == id)
            .map(|e| e.xyz)?;
        self.tree.remove_at_point(&found)
    }

    /// The `k` nearest AEDs passing `filters`, nearest first, walking the tree outward and
    /// stopping at `max_distance_m`.
    pub fn nearest(&self, at: LatLon, k: usize, filters: &Filters) -> Vec<Nearest> {
        let q = to_xyz(at);
        let limit = filters.max_distance_m.map(chord2_for_distance);
        let mut out = Vec::with_capacity(k);
        for (e, d2) in self.tree.nearest_neighbor_iter_with_distance_2(&q) {
            if out.len() == k || limit.is_some_and(|l| d2 > l) {
                break;
            }
            if filters.admits(e) {
                out.push(Nearest {
                    id: e.id,
                    distance_m: distance_for_chord2(d2),
                    bearing_deg: bearing_deg(at, e.pos),
                });
            }
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = &AedEntry> {
        self.tree.iter()
    }
}
