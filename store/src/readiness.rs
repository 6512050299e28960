//! Readiness: an AED's status with its history, manual overrides held against telemetry, the
//! durable device event log and the coalesced last-seen state of devices.

use aednet_core::aed::{Aed, Readiness, ReadinessStatus};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::Result;

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

#[async_trait]
pub trait ReadinessStore: Send + Sync {
    /// Sets readiness and appends it to the AED's readiness history (`source`: api, device,
    /// watchdog), in one transaction; `None` if there is no such AED.
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
    /// The newest readiness history row's id (0 when there is none).
    async fn readiness_history_head(&self) -> Result<i64>;
    /// Readiness changes recorded after history row `after_id`, oldest first, at most `limit`:
    /// `(history id, AED id, the AED's status now)`. Nodes of a cluster re-check these against
    /// their indexes, so a change whose event never reached them (its node died between the
    /// commit and the publish) is still applied.
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
}
