//! A store that fails on demand, for fault-injection tests: it implements every store trait by
//! delegating to a real store (SQLite or PostgreSQL), except that the next `n` readiness writes
//! ([`ReadinessStore::write_readiness`]: the watchdog's, guardian checks', override expiry's)
//! fail as a database would (connection refused, disk full).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use aednet_core::aed::{Aed, AedData, Readiness, ReadinessStatus};
use aednet_core::district::{District, DistrictData};
use aednet_core::geo_util::LatLon;
use aednet_core::rescuer::{Rescuer, RescuerData};
use aednet_core::station::{Station, StationData};
use aednet_store::prelude::*;
use aednet_store::{
    AedIndexRow, Artifact, ArtifactInfo, AttentionItem, AttentionQuery, Backend, ConsumableDates,
    DeviceEventRecord, DeviceSnapshot, DeviceState, DynStore, ListQuery, NewToken, OverrideChange,
    Page, ReadinessChange, ReadinessOverride, Recorded, Result, StoreError, TokenRecord,
    UpsertOutcome, WorkOrder, WorkOrderUpdate, Written,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

#[derive(Debug)]
pub struct FailingStore {
    inner: DynStore,
    /// Readiness writes still to fail.
    fail_next: AtomicU32,
    /// Readiness writes that failed so far.
    pub failed: AtomicU32,
}

impl FailingStore {
    pub fn new(inner: DynStore) -> Arc<Self> {
        Arc::new(Self {
            inner,
            fail_next: AtomicU32::new(0),
            failed: AtomicU32::new(0),
        })
    }

    /// The next `n` readiness writes fail.
    pub fn fail_next_writes(&self, n: u32) {
        self.fail_next.store(n, Ordering::SeqCst);
    }

    async fn check_write(&self) -> Result<()> {
        let take = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if take.is_ok() {
            self.failed.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Database(sqlx::Error::PoolTimedOut));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for FailingStore {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
}

#[async_trait]
impl AedStore for FailingStore {
    async fn create_aed(&self, data: &AedData) -> Result<Aed> {
        self.inner.create_aed(data).await
    }
    async fn get_aed(&self, id: i64) -> Result<Option<Aed>> {
        self.inner.get_aed(id).await
    }
    async fn replace_aed(&self, id: i64, data: &AedData) -> Result<Option<Aed>> {
        self.inner.replace_aed(id, data).await
    }
    async fn delete_aed(&self, id: i64) -> Result<bool> {
        self.inner.delete_aed(id).await
    }
    async fn list_aeds(&self, q: &ListQuery) -> Result<Page<Aed>> {
        self.inner.list_aeds(q).await
    }
    async fn count_aeds(&self) -> Result<i64> {
        self.inner.count_aeds().await
    }
    async fn upsert_aeds(&self, batch: &[AedData]) -> Result<Vec<UpsertOutcome>> {
        self.inner.upsert_aeds(batch).await
    }
    async fn insert_aeds_bulk(&self, batch: &[AedData]) -> Result<u64> {
        self.inner.insert_aeds_bulk(batch).await
    }
    async fn load_aed_index(&self) -> Result<Vec<AedIndexRow>> {
        self.inner.load_aed_index().await
    }
}

#[async_trait]
impl ArtifactStore for FailingStore {
    async fn put_artifact(&self, kind: &str, meta: &str, bytes: &[u8]) -> Result<i64> {
        self.inner.put_artifact(kind, meta, bytes).await
    }
    async fn get_artifact(&self, kind: &str) -> Result<Option<Artifact>> {
        self.inner.get_artifact(kind).await
    }
    async fn artifact_versions(&self) -> Result<Vec<ArtifactInfo>> {
        self.inner.artifact_versions().await
    }
    async fn delete_artifact(&self, kind: &str) -> Result<bool> {
        self.inner.delete_artifact(kind).await
    }
}

#[async_trait]
impl DistrictStore for FailingStore {
    async fn create_district(&self, data: &DistrictData) -> Result<District> {
        self.inner.create_district(data).await
    }
    async fn get_district(&self, id: i64) -> Result<Option<District>> {
        self.inner.get_district(id).await
    }
    async fn replace_district(&self, id: i64, data: &DistrictData) -> Result<Option<District>> {
        self.inner.replace_district(id, data).await
    }
    async fn delete_district(&self, id: i64) -> Result<bool> {
        self.inner.delete_district(id).await
    }
    async fn list_districts(&self, q: &ListQuery) -> Result<Page<District>> {
        self.inner.list_districts(q).await
    }
    async fn upsert_districts(&self, batch: &[DistrictData]) -> Result<Vec<UpsertOutcome>> {
        self.inner.upsert_districts(batch).await
    }
    async fn assign_districts(
        &self,
        locate: &(dyn Fn(LatLon) -> Option<i64> + Sync),
    ) -> Result<u64> {
        self.inner.assign_districts(locate).await
    }
}

#[async_trait]
impl IncidentStore for FailingStore {
    async fn create_incident(&self, state: &str, at: DateTime<Utc>) -> Result<i64> {
        self.inner.create_incident(state, at).await
    }
    async fn save_incident(
        &self,
        id: i64,
        state: &str,
        doc: &str,
        audit: &[(i64, DateTime<Utc>, String)],
    ) -> Result<()> {
        self.inner.save_incident(id, state, doc, audit).await
    }
    async fn get_incident(&self, id: i64) -> Result<Option<String>> {
        self.inner.get_incident(id).await
    }
    async fn open_incidents(&self) -> Result<Vec<String>> {
        self.inner.open_incidents().await
    }
    async fn incident_audit(&self, id: i64) -> Result<Vec<String>> {
        self.inner.incident_audit(id).await
    }
    async fn erase_incident_positions(&self, closed_before: DateTime<Utc>) -> Result<u64> {
        self.inner.erase_incident_positions(closed_before).await
    }
    async fn erase_rescuer_positions(&self, rescuer_id: Option<i64>) -> Result<u64> {
        self.inner.erase_rescuer_positions(rescuer_id).await
    }
}

#[async_trait]
impl ReadinessStore for FailingStore {
    async fn set_aed_readiness(
        &self,
        id: i64,
        readiness: &Readiness,
        source: &str,
    ) -> Result<Option<Aed>> {
        self.inner.set_aed_readiness(id, readiness, source).await
    }
    async fn record_device_event(
        &self,
        event: &DeviceEventRecord,
        readiness: Option<&Readiness>,
        dates: &ConsumableDates,
        expect_rev: Option<i64>,
    ) -> Result<Recorded> {
        self.inner
            .record_device_event(event, readiness, dates, expect_rev)
            .await
    }
    async fn write_readiness(
        &self,
        aed_id: i64,
        readiness: &Readiness,
        over: OverrideChange<'_>,
        source: &str,
        expect_rev: Option<i64>,
    ) -> Result<Written> {
        self.check_write().await?;
        self.inner
            .write_readiness(aed_id, readiness, over, source, expect_rev)
            .await
    }
    async fn device_snapshot(&self, aed_id: i64) -> Result<Option<DeviceSnapshot>> {
        self.inner.device_snapshot(aed_id).await
    }
    async fn device_boot_seen(&self, aed_id: i64, boot: &str) -> Result<bool> {
        self.inner.device_boot_seen(aed_id, boot).await
    }
    async fn set_readiness_override(
        &self,
        aed_id: i64,
        over: Option<&ReadinessOverride>,
        readiness: &Readiness,
        source: &str,
    ) -> Result<Option<Aed>> {
        self.inner
            .set_readiness_override(aed_id, over, readiness, source)
            .await
    }
    async fn get_readiness_override(&self, aed_id: i64) -> Result<Option<ReadinessOverride>> {
        self.inner.get_readiness_override(aed_id).await
    }
    async fn readiness_overrides(&self) -> Result<Vec<ReadinessOverride>> {
        self.inner.readiness_overrides().await
    }
    async fn attention_list(&self, q: &AttentionQuery) -> Result<Vec<AttentionItem>> {
        self.inner.attention_list(q).await
    }
    async fn readiness_history(&self, aed_id: i64, limit: u32) -> Result<Vec<ReadinessChange>> {
        self.inner.readiness_history(aed_id, limit).await
    }
    async fn readiness_history_head(&self) -> Result<i64> {
        self.inner.readiness_history_head().await
    }
    async fn readiness_changes_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, i64, ReadinessStatus)>> {
        self.inner.readiness_changes_after(after_id, limit).await
    }
    async fn device_event_seqs(&self, aed_id: i64) -> Result<Vec<i64>> {
        self.inner.device_event_seqs(aed_id).await
    }
    async fn save_device_states(&self, batch: &[DeviceState]) -> Result<()> {
        self.inner.save_device_states(batch).await
    }
    async fn device_states(&self) -> Result<Vec<DeviceState>> {
        self.inner.device_states().await
    }
}

#[async_trait]
impl RescuerStore for FailingStore {
    async fn create_rescuer(&self, data: &RescuerData) -> Result<Rescuer> {
        self.inner.create_rescuer(data).await
    }
    async fn get_rescuer(&self, id: i64) -> Result<Option<Rescuer>> {
        self.inner.get_rescuer(id).await
    }
    async fn replace_rescuer(&self, id: i64, data: &RescuerData) -> Result<Option<Rescuer>> {
        self.inner.replace_rescuer(id, data).await
    }
    async fn delete_rescuer(&self, id: i64) -> Result<bool> {
        self.inner.delete_rescuer(id).await
    }
    async fn list_rescuers(&self, q: &ListQuery) -> Result<Page<Rescuer>> {
        self.inner.list_rescuers(q).await
    }
    async fn insert_rescuers_bulk(&self, batch: &[RescuerData]) -> Result<u64> {
        self.inner.insert_rescuers_bulk(batch).await
    }
}

#[async_trait]
impl StationStore for FailingStore {
    async fn create_station(&self, data: &StationData) -> Result<Station> {
        self.inner.create_station(data).await
    }
    async fn get_station(&self, id: i64) -> Result<Option<Station>> {
        self.inner.get_station(id).await
    }
    async fn replace_station(&self, id: i64, data: &StationData) -> Result<Option<Station>> {
        self.inner.replace_station(id, data).await
    }
    async fn delete_station(&self, id: i64) -> Result<bool> {
        self.inner.delete_station(id).await
    }
    async fn list_stations(&self, q: &ListQuery) -> Result<Page<Station>> {
        self.inner.list_stations(q).await
    }
    async fn upsert_stations(&self, batch: &[StationData]) -> Result<Vec<UpsertOutcome>> {
        self.inner.upsert_stations(batch).await
    }
}

#[async_trait]
impl TokenStore for FailingStore {
    async fn create_token(&self, token: &NewToken) -> Result<TokenRecord> {
        self.inner.create_token(token).await
    }
    async fn find_token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        self.inner.find_token(token_hash).await
    }
    async fn revoke_token(&self, id: i64) -> Result<bool> {
        self.inner.revoke_token(id).await
    }
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.inner.list_tokens().await
    }
}

#[async_trait]
impl WorkOrderStore for FailingStore {
    async fn create_work_order(
        &self,
        aed_id: i64,
        title: &str,
        opened_by: &str,
        at: DateTime<Utc>,
    ) -> Result<WorkOrder> {
        self.inner
            .create_work_order(aed_id, title, opened_by, at)
            .await
    }
    async fn get_work_order(&self, id: i64) -> Result<Option<WorkOrder>> {
        self.inner.get_work_order(id).await
    }
    async fn list_work_orders(
        &self,
        aed_id: Option<i64>,
        include_closed: bool,
    ) -> Result<Vec<WorkOrder>> {
        self.inner.list_work_orders(aed_id, include_closed).await
    }
    async fn update_work_order(
        &self,
        id: i64,
        update: &WorkOrderUpdate,
        at: DateTime<Utc>,
    ) -> Result<Option<WorkOrder>> {
        self.inner.update_work_order(id, update, at).await
    }
    async fn add_work_order_note(
        &self,
        id: i64,
        author: &str,
        note: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<WorkOrder>> {
        self.inner.add_work_order_note(id, author, note, at).await
    }
}
