//! Live rescuer positions: kept in memory only, expired after a TTL, never persisted here.
//!
//! A move is a remove and an insert in the R-tree plus two B-tree operations on the expiry
//! order: O(log n). Expiry pops the oldest reports, never scans.

use std::collections::{BTreeSet, HashMap};

use aednet_core::geo_util::LatLon;
use chrono::{DateTime, Duration, Utc};
use rstar::RTree;

use crate::aed_index::remove_exact;
use crate::sphere::{chord2_for_distance, distance_for_chord2, Located};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RescuerFix {
    pub pos: LatLon,
    pub seen_at: DateTime<Utc>,
}

/// A rescuer found near a point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NearRescuer {
    pub id: i64,
    pub distance_m: f64,
    pub fix: RescuerFix,
}

#[derive(Debug)]
pub struct RescuerIndex {
    tree: RTree<Located<RescuerFix>>,
    by_id: HashMap<i64, ([f64; 3], i64)>,
    /// (seen_at in ms, id), oldest first.
    by_time: BTreeSet<(i64, i64)>,
    ttl: Duration,
}

impl RescuerIndex {
    pub fn new(ttl: Duration) -> Self {
        Self {
            tree: RTree::new(),
            by_id: HashMap::new(),
            by_time: BTreeSet::new(),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Records a position report. An older report than the one held is ignored (reports can
    /// arrive out of order over two channels); returns whether it was applied.
    pub fn upsert(&mut self, id: i64, pos: LatLon, seen_at: DateTime<Utc>) -> bool {
        let ms = seen_at.timestamp_millis();
        if let Some(&(xyz, old_ms)) = self.by_id.get(&id) {
            if old_ms > ms {
                return false;
            }
            remove_exact(&mut self.tree, id, xyz);
            self.by_time.remove(&(old_ms, id));
        }
        let l = Located::new(id, pos, RescuerFix { pos, seen_at });
        self.by_id.insert(id, (l.xyz, ms));
        self.by_time.insert((ms, id));
        self.tree.insert(l);
        true
    }

    pub fn remove(&mut self, id: i64) -> Option<RescuerFix> {
        let (xyz, ms) = self.by_id.remove(&id)?;
        self.by_time.remove(&(ms, id));
        remove_exact(&mut self.tree, id, xyz).map(|l| l.item)
    }

    pub fn get(&self, id: i64) -> Option<RescuerFix> {
        let (xyz, _) = self.by_id.get(&id)?;
        self.tree
            .locate_all_at_point(*xyz)
            .find(|l| l.id == id)
            .map(|l| l.item)
    }

    /// Drops every position older than the TTL at `now`; returns the ids dropped.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<i64> {
        let cutoff = (now - self.ttl).timestamp_millis();
        let mut dropped = Vec::new();
        while let Some(&(ms, id)) = self.by_time.first() {
            if ms >= cutoff {
                break;
            }
            self.remove(id);
            dropped.push(id);
        }
        dropped
    }

    /// Rescuers with a fresh fix within `radius_m` of `at`, nearest first, at most `limit`,
    /// that `keep` accepts (on duty, certified, not busy: the caller's business).
    pub fn within(
        &self,
        at: LatLon,
        radius_m: f64,
        limit: usize,
        now: DateTime<Utc>,
        mut keep: impl FnMut(i64) -> bool,
    ) -> Vec<NearRescuer> {
        let q = crate::sphere::to_xyz(at);
        let lim = chord2_for_distance(radius_m);
        let fresh_after = now - self.ttl;
        let mut out = Vec::new();
        for (l, d2) in self.tree.nearest_neighbor_iter_with_distance_2(q) {
            if out.len() >= limit || d2 > lim {
                break;
            }
            if l.item.seen_at < fresh_after || !keep(l.id) {
                continue;
            }
            out.push(NearRescuer {
                id: l.id,
                distance_m: distance_for_chord2(d2),
                fix: l.item,
            });
        }
        out
    }
}
