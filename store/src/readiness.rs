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
    /// The device's boot (protocol version 2); empty for version 1. Sequence numbers are
    /// unique per (AED, boot).
    pub boot: String,
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
    /// Stored; `rev` is the AED's readiness revision after the write.
    New { rev: i64 },
    /// (AED, boot, seq) was stored before: nothing written.
    Duplicate,
    /// The AED's readiness revision was not the expected one: someone else wrote readiness
    /// since the caller read it. Nothing written; re-read and decide again.
    Stale,
}

/// What a readiness write does to the AED's manual override.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OverrideChange<'a> {
    Keep,
    Set(&'a ReadinessOverride),
    Clear,
}

/// The outcome of a (conditional) readiness write.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// Written; the AED as it is now, with its new readiness revision.
    Done { aed: Box<Aed>, rev: i64 },
    /// The expected revision was not the current one; nothing written.
    Stale,
    /// No such AED.
    Missing,
}

/// Everything the device gateway needs to take over a device's readiness: the AED, its
/// readiness revision, its override, and its current boot with the highest stored sequence
/// number of that boot.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSnapshot {
    pub aed: Aed,
    pub rev: i64,
    pub over: Option<ReadinessOverride>,
    /// The boot of the newest stored device message (empty: version 1, or none yet).
    pub boot: String,
    /// Highest stored sequence number of that boot.
    pub last_seq: Option<i64>,
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
    /// watchdog), in one transaction, unconditionally (bumping the revision, so the gateway
    /// notices); `None` if there is no such AED.
    async fn set_aed_readiness(
        &self,
        id: i64,
        readiness: &Readiness,
        source: &str,
    ) -> Result<Option<Aed>>;
    /// Stores a device message durably, and with it the readiness it changes (if any) and the
    /// consumable dates it reports, in one transaction. A message whose (aed, boot, seq) is
    /// already stored changes nothing: `Duplicate`. With `expect_rev`, nothing is written
    /// unless the AED's readiness revision is still that one: `Stale`.
    async fn record_device_event(
        &self,
        event: &DeviceEventRecord,
        readiness: Option<&Readiness>,
        dates: &ConsumableDates,
        expect_rev: Option<i64>,
    ) -> Result<Recorded>;
    /// The one readiness write: sets readiness (appending it to the history with `source`,
    /// bumping the revision) and changes the override, in one transaction; with `expect_rev`,
    /// only if the revision is still that one.
    async fn write_readiness(
        &self,
        aed_id: i64,
        readiness: &Readiness,
        over: OverrideChange<'_>,
        source: &str,
        expect_rev: Option<i64>,
    ) -> Result<Written>;
    /// See [`DeviceSnapshot`]; `None` if there is no such AED.
    async fn device_snapshot(&self, aed_id: i64) -> Result<Option<DeviceSnapshot>>;
    /// Whether any message of this boot of the device is stored (an older boot resending).
    async fn device_boot_seen(&self, aed_id: i64, boot: &str) -> Result<bool>;
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
    /// Sequence numbers of the stored device messages of an AED (every boot), ascending.
    async fn device_event_seqs(&self, aed_id: i64) -> Result<Vec<i64>>;
    /// Coalesced last-seen state of connected devices (heartbeats are not logged one by one).
    async fn save_device_states(&self, batch: &[DeviceState]) -> Result<()>;
    async fn device_states(&self) -> Result<Vec<DeviceState>>;
}
