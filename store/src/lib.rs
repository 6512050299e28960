//! Persistence. [`Store`] is the one interface the rest of aednet writes and reads through; it
//! has two sqlx backends, SQLite (the embedded default: one file, WAL) and PostgreSQL
//! (production), chosen by the database URL. Each backend embeds its own migrations from
//! `migrations/sqlite` and `migrations/postgres` and runs them at start-up.
//!
//! Writes are all-or-nothing (one transaction per call); constraint violations come back as
//! [`StoreError::Conflict`], never as an opaque database error, so the HTTP layer can answer 409.

use aednet_core::aed::{Access, Aed, AedData, Readiness, ReadinessStatus};
use aednet_core::district::{District, DistrictData};
use aednet_core::geo_util::{BBox, LatLon};
use aednet_core::rescuer::{Rescuer, RescuerData};
use aednet_core::station::{Station, StationData, StationKind};
use aednet_core::Role;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use std::sync::Arc;

pub mod artifacts;
mod sql;
pub use artifacts::{Artifact, ArtifactInfo, ArtifactStore};
pub use sql::connect;

/// The store's traits, for `use aednet_store::prelude::*`: [`Store`] is made of one trait per
/// concern, and a method of one of them is callable on a `DynStore` where that trait is in scope.
pub mod prelude {
    pub use crate::artifacts::ArtifactStore;
    pub use crate::Store;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique, foreign-key or check constraint rejected the write. `field` names the input
    /// field when the constraint maps to one.
    #[error("conflict: {message}")]
    Conflict {
        field: Option<String>,
        message: String,
    },
    /// A row in the database does not decode into a domain value (should never happen).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("unsupported database url: {0}")]
    UnsupportedUrl(String),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Database(sqlx::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Filters and keyset pagination for list endpoints. Results are ordered by id; `after_id` is
/// the cursor (the last id of the previous page).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub bbox: Option<BBox>,
    pub district_id: Option<i64>,
    pub status: Option<ReadinessStatus>,
    pub kind: Option<StationKind>,
    pub source: Option<String>,
    pub after_id: Option<i64>,
    /// 1..=1000; callers clamp.
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after_id` (the API's `cursor`) to get the next page; `None` on the last page.
    pub next_after: Option<i64>,
}

/// Every item of a keyset-paged list, page by page (1000 a page) with the filters of `query`:
/// `fetch` is the list call, e.g. `|q| async move { store.list_districts(&q).await }`.
pub async fn collect_all<T, F, Fut>(mut query: ListQuery, mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(ListQuery) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>>>,
{
    query.limit = 1000;
    query.after_id = None;
    let mut all = Vec::new();
    loop {
        let page = fetch(query.clone()).await?;
        all.extend(page.items);
        match page.next_after {
            Some(after) => query.after_id = Some(after),
            None => return Ok(all),
        }
    }
}

/// What an import did with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", content = "id", rename_all = "snake_case")]
pub enum UpsertOutcome {
    Inserted(i64),
    Updated(i64),
    Unchanged(i64),
}

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

/// A device message as stored in the durable log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceEventRecord {
    pub aed_id: i64,
    pub seq: i64,
    pub kind: String,
    /// The message as JSON text.
    pub body: String,
    pub device_ts: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// Dates a device reported with a message (`pads.expiry`, `battery.expiry`); `None` leaves the
/// stored date alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumableDates {
    pub pads_expiry: Option<NaiveDate>,
    pub battery_expiry: Option<NaiveDate>,
}

/// A readiness set by maintenance that telemetry may not undo: held until cleared, or until
/// `until` when set.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReadinessOverride {
    pub aed_id: i64,
    pub status: ReadinessStatus,
    pub reason: Option<String>,
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    pub set_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttentionQuery {
    pub statuses: Vec<ReadinessStatus>,
    /// Pads or battery expiring on or before this date.
    pub horizon: NaiveDate,
    pub district_id: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttentionItem {
    pub aed: Aed,
    pub over: Option<ReadinessOverride>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    New,
    Duplicate,
}

/// One entry of an AED's readiness history.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReadinessChange {
    pub status: ReadinessStatus,
    pub reason: Option<String>,
    pub since: DateTime<Utc>,
    /// `api`, `device`, `watchdog`.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeviceState {
    pub aed_id: i64,
    pub last_seen_at: DateTime<Utc>,
    pub last_seq: i64,
    pub battery_pct: Option<i32>,
    pub temperature_c: Option<f64>,
    pub signal_dbm: Option<i32>,
    pub firmware: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WorkOrder {
    pub id: i64,
    pub aed_id: i64,
    pub title: String,
    /// `open`, `assigned`, `closed`.
    pub status: String,
    pub assignee: Option<String>,
    pub opened_by: String,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    pub notes: Vec<WorkOrderNote>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct WorkOrderNote {
    pub author: String,
    pub note: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WorkOrderUpdate {
    Assign { assignee: String },
    Close { resolution: String },
}

/// A bearer token as stored: only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The rescuer or device this token belongs to, for those roles.
    pub subject_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    pub subject_id: Option<i64>,
    /// Lower-case hex SHA-256 of the token secret.
    pub token_hash: String,
}

/// The whole store: the methods below plus one trait per newer concern ([`ArtifactStore`]);
/// `use aednet_store::prelude::*` brings them all into scope.
#[async_trait]
pub trait Store: ArtifactStore + Send + Sync + std::fmt::Debug {
    fn backend(&self) -> Backend;
    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<()>;

    // ---- AEDs
    async fn create_aed(&self, data: &AedData) -> Result<Aed>;
    async fn get_aed(&self, id: i64) -> Result<Option<Aed>>;
    /// Replaces every field (readiness included); `None` if there is no such AED.
    async fn replace_aed(&self, id: i64, data: &AedData) -> Result<Option<Aed>>;
    async fn delete_aed(&self, id: i64) -> Result<bool>;
    async fn list_aeds(&self, q: &ListQuery) -> Result<Page<Aed>>;
    async fn count_aeds(&self) -> Result<i64>;
    /// Sets readiness only; `None` if there is no such AED.
    /// Sets readiness and appends it to the AED's readiness history (`source`: api, device,
    /// watchdog), in one transaction.
    async fn set_aed_readiness(
        &self,
        id: i64,
        readiness: &Readiness,
        source: &str,
    ) -> Result<Option<Aed>>;
    /// Stores a device message durably, and with it the readiness it changes (if any) and the
    /// consumable dates it reports, in one transaction. A message whose (aed, seq) is already
    /// stored changes nothing: `Duplicate`.
    async fn record_device_event(
        &self,
        event: &DeviceEventRecord,
        readiness: Option<&Readiness>,
        dates: &ConsumableDates,
    ) -> Result<Recorded>;
    /// Sets (`Some`) or clears (`None`) an AED's manual readiness override together with the
    /// readiness it results in (appended to the history with `source`), in one transaction;
    /// `None` if there is no such AED.
    async fn set_readiness_override(
        &self,
        aed_id: i64,
        over: Option<&ReadinessOverride>,
        readiness: &Readiness,
        source: &str,
    ) -> Result<Option<Aed>>;
    async fn get_readiness_override(&self, aed_id: i64) -> Result<Option<ReadinessOverride>>;
    /// Every override (start-up: their expiry timers).
    async fn readiness_overrides(&self) -> Result<Vec<ReadinessOverride>>;
    /// AEDs needing attention, oldest problem first, in one indexed query: status in the set, or
    /// pads/battery expiring on or before the horizon; optionally one district.
    async fn attention_list(&self, q: &AttentionQuery) -> Result<Vec<AttentionItem>>;
    /// Newest first.
    async fn readiness_history(&self, aed_id: i64, limit: u32) -> Result<Vec<ReadinessChange>>;
    /// Readiness changes recorded after history row `after_id`, oldest first, at most `limit`:
    /// `(history id, AED id, the AED's status now)`. Nodes of a cluster re-check these against
    /// their indexes, so a change whose event never reached them (its node died between the
    /// commit and the publish) is still applied.
    /// The newest readiness history row's id (0 when there is none).
    async fn readiness_history_head(&self) -> Result<i64>;
    async fn readiness_changes_after(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<(i64, i64, ReadinessStatus)>>;
    /// Sequence numbers of the stored device messages of an AED, ascending.
    async fn device_event_seqs(&self, aed_id: i64) -> Result<Vec<i64>>;
    /// Coalesced last-seen state of connected devices (heartbeats are not logged one by one).
    async fn save_device_states(&self, batch: &[DeviceState]) -> Result<()>;
    async fn device_states(&self) -> Result<Vec<DeviceState>>;

    // ---- Incidents (documents owned by the dispatch engine; the store keeps them opaque)
    /// Reserves an id for a new incident, stored with `state` and an empty document.
    async fn create_incident(&self, state: &str, at: DateTime<Utc>) -> Result<i64>;
    /// Replaces the document and appends audit entries `(seq, at, entry JSON)`, in one
    /// transaction. Audit rows are only ever inserted; a seq stored before is a conflict.
    async fn save_incident(
        &self,
        id: i64,
        state: &str,
        doc: &str,
        audit: &[(i64, DateTime<Utc>, String)],
    ) -> Result<()>;
    async fn get_incident(&self, id: i64) -> Result<Option<String>>;
    /// Documents of incidents whose state is not `closed` or `cancelled`.
    async fn open_incidents(&self) -> Result<Vec<String>>;
    async fn incident_audit(&self, id: i64) -> Result<Vec<String>>;

    // ---- Maintenance work orders
    async fn create_work_order(
        &self,
        aed_id: i64,
        title: &str,
        opened_by: &str,
        at: DateTime<Utc>,
    ) -> Result<WorkOrder>;
    async fn get_work_order(&self, id: i64) -> Result<Option<WorkOrder>>;
    /// Open and assigned orders (or all, with `include_closed`), oldest first; optionally of one AED.
    async fn list_work_orders(
        &self,
        aed_id: Option<i64>,
        include_closed: bool,
    ) -> Result<Vec<WorkOrder>>;
    /// Assigns (status `assigned`) or closes (status `closed`, with a resolution) an order that is
    /// not closed; `None` when there is no such open order.
    async fn update_work_order(
        &self,
        id: i64,
        update: &WorkOrderUpdate,
        at: DateTime<Utc>,
    ) -> Result<Option<WorkOrder>>;
    async fn add_work_order_note(
        &self,
        id: i64,
        author: &str,
        note: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<WorkOrder>>;
    /// Import path, one transaction: records are matched on (source, external_ref); a record
    /// equal in source content ([`AedData::same_source_content`]) is `Unchanged`, a changed one
    /// is updated keeping its readiness, a new one inserted. Records without an external_ref
    /// are always inserted. Outcomes are in input order.
    async fn upsert_aeds(&self, batch: &[AedData]) -> Result<Vec<UpsertOutcome>>;
    /// Fast path for generated data (demo, benchmarks): plain multi-row inserts, one transaction.
    async fn insert_aeds_bulk(&self, batch: &[AedData]) -> Result<u64>;
    /// Everything the in-memory indexes need, for all AEDs, ordered by id.
    async fn load_aed_index(&self) -> Result<Vec<AedIndexRow>>;
    /// Sets `district_id` of every AED and station from its location (point in polygon) for
    /// those whose district is unset; returns how many changed.
    async fn assign_districts(
        &self,
        locate: &(dyn Fn(LatLon) -> Option<i64> + Sync),
    ) -> Result<u64>;

    // ---- Stations
    async fn create_station(&self, data: &StationData) -> Result<Station>;
    async fn get_station(&self, id: i64) -> Result<Option<Station>>;
    async fn replace_station(&self, id: i64, data: &StationData) -> Result<Option<Station>>;
    async fn delete_station(&self, id: i64) -> Result<bool>;
    async fn list_stations(&self, q: &ListQuery) -> Result<Page<Station>>;
    async fn upsert_stations(&self, batch: &[StationData]) -> Result<Vec<UpsertOutcome>>;

    // ---- Rescuers (personal data)
    async fn create_rescuer(&self, data: &RescuerData) -> Result<Rescuer>;
    async fn get_rescuer(&self, id: i64) -> Result<Option<Rescuer>>;
    async fn replace_rescuer(&self, id: i64, data: &RescuerData) -> Result<Option<Rescuer>>;
    async fn delete_rescuer(&self, id: i64) -> Result<bool>;
    async fn list_rescuers(&self, q: &ListQuery) -> Result<Page<Rescuer>>;
    async fn insert_rescuers_bulk(&self, batch: &[RescuerData]) -> Result<u64>;

    // ---- Districts
    async fn create_district(&self, data: &DistrictData) -> Result<District>;
    async fn get_district(&self, id: i64) -> Result<Option<District>>;
    async fn replace_district(&self, id: i64, data: &DistrictData) -> Result<Option<District>>;
    async fn delete_district(&self, id: i64) -> Result<bool>;
    async fn list_districts(&self, q: &ListQuery) -> Result<Page<District>>;
    /// Matched on (source, external_ref) like [`Store::upsert_aeds`].
    async fn upsert_districts(&self, batch: &[DistrictData]) -> Result<Vec<UpsertOutcome>>;

    // ---- API tokens
    async fn create_token(&self, token: &NewToken) -> Result<TokenRecord>;
    /// A live (not revoked) token by hash.
    async fn find_token(&self, token_hash: &str) -> Result<Option<TokenRecord>>;
    async fn revoke_token(&self, id: i64) -> Result<bool>;
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
}

pub type DynStore = Arc<dyn Store>;
