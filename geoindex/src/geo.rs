//! [`GeoIndex`]: the three indexes behind locks, shared by every request.
//!
//! Readers take a read lock for the length of one query (microseconds). Writers come in two
//! sizes: single updates from store events (an AED edited, a readiness change, a rescuer
//! moving) hold the write lock for one O(log n) tree operation; bulk rebuilds (start-up, an
//! import) build the new index *outside* the lock and swap it in, so readers never wait on a
//! long write.

use std::sync::Arc;

use aednet_core::aed::ReadinessStatus;
use aednet_core::geo_util::LatLon;
use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::aed_index::{AedEntry, AedIndex, Filters, Nearest};
use crate::rescuer_index::{NearRescuer, RescuerFix, RescuerIndex};
use crate::schedule::{Schedule, Schedules};
use crate::station_index::{StationEntry, StationFilters, StationIndex, StationNearest};
use crate::walk::WalkModel;

#[derive(Debug)]
pub struct GeoIndex {
    aeds: RwLock<AedIndex>,
    stations: RwLock<StationIndex>,
    rescuers: RwLock<RescuerIndex>,
    schedules: Mutex<Schedules>,
}

impl Default for GeoIndex {
    fn default() -> Self {
        Self::new(Duration::minutes(15))
    }
}

impl GeoIndex {
    /// An empty index; rescuer positions expire after `rescuer_ttl`.
    pub fn new(rescuer_ttl: Duration) -> Self {
        Self {
            aeds: RwLock::new(AedIndex::default()),
            stations: RwLock::new(StationIndex::default()),
            rescuers: RwLock::new(RescuerIndex::new(rescuer_ttl)),
            schedules: Mutex::new(Schedules::default()),
        }
    }

    /// The shared compiled schedule for an opening-hours value at a place.
    pub fn schedule(&self, raw: Option<&str>, tz: Tz, pos: LatLon) -> Arc<Schedule> {
        self.schedules.lock().get(raw, tz, pos)
    }

    /// Runs `f` with the schedule interner held: for building many entries at once.
    pub fn with_schedules<R>(&self, f: impl FnOnce(&mut Schedules) -> R) -> R {
        f(&mut self.schedules.lock())
    }

    // ---- AEDs

    pub fn nearest_aeds(
        &self,
        at: LatLon,
        k: usize,
        f: &Filters,
        walk: &WalkModel,
    ) -> Vec<Nearest> {
        self.aeds.read().nearest(at, k, f, walk)
    }

    /// Read access for scans (coverage, dispatch). Hold it briefly.
    pub fn aeds(&self) -> RwLockReadGuard<'_, AedIndex> {
        self.aeds.read()
    }

    /// Swaps in an index built elsewhere; the old one is dropped after the lock is released.
    pub fn replace_aeds(&self, index: AedIndex) {
        let old = std::mem::replace(&mut *self.aeds.write(), index);
        drop(old);
    }

    pub fn upsert_aed(&self, e: AedEntry) {
        self.aeds.write().upsert(e);
    }

    pub fn remove_aed(&self, id: i64) -> bool {
        self.aeds.write().remove(id).is_some()
    }

    pub fn set_aed_status(&self, id: i64, status: ReadinessStatus) -> bool {
        self.aeds.write().set_status(id, status)
    }

    pub fn aed_count(&self) -> usize {
        self.aeds.read().len()
    }

    // ---- Stations

    pub fn nearest_stations(
        &self,
        at: LatLon,
        k: usize,
        f: &StationFilters,
        walk: &WalkModel,
    ) -> Vec<StationNearest> {
        self.stations.read().nearest(at, k, f, walk)
    }

    pub fn replace_stations(&self, index: StationIndex) {
        let old = std::mem::replace(&mut *self.stations.write(), index);
        drop(old);
    }

    pub fn upsert_station(&self, e: StationEntry) {
        self.stations.write().upsert(e);
    }

    pub fn remove_station(&self, id: i64) -> bool {
        self.stations.write().remove(id).is_some()
    }

    pub fn station_count(&self) -> usize {
        self.stations.read().len()
    }

    // ---- Rescuers (never exposed publicly; see mobile-api)

    pub fn rescuer_moved(&self, id: i64, pos: LatLon, at: DateTime<Utc>) -> bool {
        self.rescuers.write().upsert(id, pos, at)
    }

    pub fn rescuer_gone(&self, id: i64) -> Option<RescuerFix> {
        self.rescuers.write().remove(id)
    }

    pub fn rescuer(&self, id: i64) -> Option<RescuerFix> {
        self.rescuers.read().get(id)
    }

    pub fn expire_rescuers(&self, now: DateTime<Utc>) -> Vec<i64> {
        self.rescuers.write().expire(now)
    }

    pub fn rescuers_within(
        &self,
        at: LatLon,
        radius_m: f64,
        limit: usize,
        now: DateTime<Utc>,
        keep: impl FnMut(i64) -> bool,
    ) -> Vec<NearRescuer> {
        self.rescuers.read().within(at, radius_m, limit, now, keep)
    }

    pub fn rescuer_count(&self) -> usize {
        self.rescuers.read().len()
    }
}
