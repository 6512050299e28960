//! Stations (scenic-area aid stations, 博爱驿站, school and community stations, bus kits) in
//! their own R-tree. Bus kits move: a position report is an O(log n) upsert.

use std::collections::HashMap;
use std::sync::Arc;

use aednet_core::geo_util::LatLon;
use aednet_core::hours::HoursState;
use aednet_core::station::{Station, StationKind};
use chrono::{DateTime, Utc};
use rstar::RTree;
use serde::Serialize;

use crate::aed_index::remove_exact;
use crate::schedule::Schedule;
use crate::sphere::{bearing_deg, chord2_for_distance, distance_for_chord2, Located};
use crate::walk::WalkModel;

#[derive(Debug, Clone)]
pub struct StationEntry {
    pub id: i64,
    pub pos: LatLon,
    pub kind: StationKind,
    /// Staffed hours.
    pub schedule: Arc<Schedule>,
    /// The station as the public may see it (personal contact removed).
    pub station: Arc<Station>,
}

#[derive(Debug, Clone)]
pub struct StationFilters {
    /// Empty: every kind.
    pub kinds: Vec<StationKind>,
    /// The instant staffing is reported for.
    pub at: DateTime<Utc>,
    /// Only stations staffed at `at` (or with unknown hours when `include_unknown`).
    pub staffed_only: bool,
    pub include_unknown: bool,
    pub max_distance_m: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StationNearest {
    pub distance_m: f64,
    pub bearing_deg: f64,
    pub walk_s: f64,
    pub staffed: HoursState,
    pub next_change: Option<DateTime<Utc>>,
    pub station: Arc<Station>,
}

#[derive(Debug, Default)]
pub struct StationIndex {
    tree: RTree<Located<StationEntry>>,
    by_id: HashMap<i64, [f64; 3]>,
}

impl StationIndex {
    pub fn build(entries: Vec<StationEntry>) -> Self {
        let mut s = Self::default();
        let located: Vec<_> = entries
            .into_iter()
            .map(|e| Located::new(e.id, e.pos, e))
            .collect();
        for l in &located {
            s.by_id.insert(l.id, l.xyz);
        }
        s.tree = RTree::bulk_load(located);
        s
    }

    pub fn len(&self) -> usize {
        self.tree.size()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.size() == 0
    }

    pub fn upsert(&mut self, e: StationEntry) {
        self.remove(e.id);
        let l = Located::new(e.id, e.pos, e);
        self.by_id.insert(l.id, l.xyz);
        self.tree.insert(l);
    }

    pub fn remove(&mut self, id: i64) -> Option<StationEntry> {
        let xyz = self.by_id.remove(&id)?;
        remove_exact(&mut self.tree, id, xyz).map(|l| l.item)
    }

    /// The `k` nearest stations passing `f`, nearest first.
    pub fn nearest(
        &self,
        at: LatLon,
        k: usize,
        f: &StationFilters,
        walk: &WalkModel,
    ) -> Vec<StationNearest> {
        let q = crate::sphere::to_xyz(at);
        let limit = f.max_distance_m.map(chord2_for_distance);
        let mut out = Vec::with_capacity(k);
        for (l, d2) in self.tree.nearest_neighbor_iter_with_distance_2(q) {
            if out.len() >= k || limit.is_some_and(|lim| d2 > lim) {
                break;
            }
            let e = &l.item;
            if !f.kinds.is_empty() && !f.kinds.contains(&e.kind) {
                continue;
            }
            let s = e.schedule.at(f.at);
            let (staffed, next_change) = (s.state, s.next_change);
            if f.staffed_only
                && !(staffed == HoursState::Open
                    || (f.include_unknown && staffed == HoursState::Unknown))
            {
                continue;
            }
            let d = distance_for_chord2(d2);
            out.push(StationNearest {
                distance_m: d,
                bearing_deg: bearing_deg(at, e.pos),
                walk_s: walk.walk_s(d),
                staffed,
                next_change,
                station: e.station.clone(),
            });
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = &StationEntry> {
        self.tree.iter().map(|l| &l.item)
    }
}
