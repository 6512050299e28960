//! The AED registry: records, lists, imports (matched on source and external ref), and the
//! narrow rows the in-memory indexes load at start-up.

use std::sync::Arc;

use aednet_core::aed::{Access, Aed, AedData, ReadinessStatus};
use aednet_core::geo_util::LatLon;
use async_trait::async_trait;
use chrono_tz::Tz;

use crate::{ListQuery, Page, Result, UpsertOutcome};

/// The columns the in-memory indexes need, loaded in one pass at start-up. Kept narrow on
/// purpose: loading 10^6 of these from SQLite is a start-up cost budgeted at < 2 s.
#[derive(Debug, Clone, PartialEq)]
pub struct AedIndexRow {
    pub id: i64,
    pub location: LatLon,
    pub access: Access,
    pub status: ReadinessStatus,
    pub indoor: Option<bool>,
    /// Interned: a city's 10^5 AEDs share a few hundred distinct schedules.
    pub opening_hours: Option<Arc<str>>,
    pub time_zone: Tz,
    pub cabinet_locked: bool,
    pub district_id: Option<i64>,
    /// What a caller is shown; kept in the index so the hot path never reads the store.
    pub name: Option<String>,
    pub address: Option<String>,
    pub operator: Option<String>,
    pub level: Option<String>,
    pub location_description: Option<String>,
}

#[async_trait]
pub trait AedStore: Send + Sync {
    async fn create_aed(&self, data: &AedData) -> Result<Aed>;
    async fn get_aed(&self, id: i64) -> Result<Option<Aed>>;
    /// Replaces every field but readiness (its writer is [`crate::ReadinessStore`]: a copy read
    /// before would overwrite telemetry that arrived since); `None` if there is no such AED.
    async fn replace_aed(&self, id: i64, data: &AedData) -> Result<Option<Aed>>;
    async fn delete_aed(&self, id: i64) -> Result<bool>;
    async fn list_aeds(&self, q: &ListQuery) -> Result<Page<Aed>>;
    async fn count_aeds(&self) -> Result<i64>;
    /// Import path, one transaction: records are matched on (source, external_ref); a record
    /// equal in source content ([`AedData::same_source_content`]) is `Unchanged`, a changed one
    /// is updated keeping its readiness, a new one inserted. Records without an external_ref
    /// are always inserted. Outcomes are in input order.
    async fn upsert_aeds(&self, batch: &[AedData]) -> Result<Vec<UpsertOutcome>>;
    /// Fast path for generated data (demo, benchmarks): plain multi-row inserts, one transaction.
    async fn insert_aeds_bulk(&self, batch: &[AedData]) -> Result<u64>;
    /// Everything the in-memory indexes need, for all AEDs, ordered by id.
    async fn load_aed_index(&self) -> Result<Vec<AedIndexRow>>;
}
