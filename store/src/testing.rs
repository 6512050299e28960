//! Fault injection for tests (feature `testing`): [`FaultyStore`] wraps a real store and makes
//! chosen calls fail as a database that is busy, full or restarting would, so tests can show
//! what the service does then. Every call is delegated to the real store otherwise.
//!
//! ```ignore
//! let store = FaultyStore::wrap(aednet_store::connect("sqlite::memory:").await?);
//! store.fail_nth_write(1); // the next write fails, the ones after it succeed
//! store.set_down(true);    // every call fails until set_down(false)
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aednet_core::aed::{Aed, AedData, Readiness, ReadinessStatus};
use aednet_core::district::{District, DistrictData};
use aednet_core::geo_util::LatLon;
use aednet_core::rescuer::{Rescuer, RescuerData};
use aednet_core::station::{Station, StationData};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::prelude::*;
use crate::{
    AedIndexRow, Artifact, ArtifactInfo, AttentionItem, AttentionQuery, Backend, ConsumableDates,
    DeviceEventRecord, DeviceSnapshot, DeviceState, DynStore, ListQuery, NewToken, OverrideChange,
    Page, ReadinessChange, ReadinessOverride, Recorded, Result, StoreError, TokenRecord,
    UpsertOutcome, WorkOrder, WorkOrderUpdate, Written,
};

/// Which writes fail: `skip` more succeed, then `fail` fail (`u64::MAX`: until cleared).
#[derive(Debug, Default, Clone, Copy)]
struct Plan {
    skip: u64,
    fail: u64,
}

/// A store whose calls fail on demand (see the module docs).
#[derive(Debug)]
pub struct FaultyStore {
    inner: DynStore,
    plan: Mutex<Plan>,
    /// When set, only writes through this method are planned to fail (others succeed).
    only: Mutex<Option<&'static str>>,
    down: AtomicBool,
    writes: AtomicU64,
    failed: AtomicU64,
}

impl FaultyStore {
    pub fn wrap(inner: DynStore) -> Arc<Self> {
        Arc::new(Self {
            inner,
            plan: Mutex::new(Plan::default()),
            only: Mutex::new(None),
            down: AtomicBool::new(false),
            writes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// The store underneath, for checking what really reached it.
    pub fn inner(&self) -> &DynStore {
        &self.inner
    }

    /// The `n`-th write from now (1 = the next) fails; the others succeed.
    pub fn fail_nth_write(&self, n: u64) {
        *self
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Plan {
            skip: n.saturating_sub(1),
            fail: 1,
        };
    }

    /// The next `n` writes fail (`u64::MAX`: every write until [`FaultyStore::heal`]).
    pub fn fail_next_writes(&self, n: u64) {
        *self
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Plan { skip: 0, fail: n };
    }

    /// Planned write failures hit only calls of the store method `name` (e.g.
    /// `"write_readiness"`); other writes succeed and are not counted against the plan.
    pub fn only_method(&self, name: &'static str) {
        *self
            .only
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(name);
    }

    /// Every call, read or write, fails while down (a database that is stopped).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// No more injected failures.
    pub fn heal(&self) {
        *self
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Plan::default();
        self.set_down(false);
    }

    /// Writes attempted so far (failed ones included).
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Calls failed on purpose so far.
    pub fn failures(&self) -> u64 {
        self.failed.load(Ordering::SeqCst)
    }

    fn injected(&self) -> StoreError {
        self.failed.fetch_add(1, Ordering::SeqCst);
        // What sqlx reports when no connection can be had: the database is unreachable.
        StoreError::Database(sqlx::Error::PoolTimedOut)
    }

    fn gate(&self, write: bool, method: &'static str) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            if write {
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
            return Err(self.injected());
        }
        if !write {
            return Ok(());
        }
        self.writes.fetch_add(1, Ordering::SeqCst);
        let only = *self
            .only
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if only.is_some_and(|m| m != method) {
            return Ok(());
        }
        let mut p = self
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if p.skip > 0 {
            p.skip -= 1;
            return Ok(());
        }
        if p.fail > 0 {
            if p.fail != u64::MAX {
                p.fail -= 1;
            }
            drop(p);
            return Err(self.injected());
        }
        Ok(())
    }
}

/// Implements a store trait by delegation; `write` methods count as writes.
macro_rules! delegate {
    ($tr:ident { $( $kind:ident fn $name:ident(&self $(, $arg:ident : $ty:ty)* ) -> $ret:ty; )* }) => {
        #[async_trait]
        impl $tr for FaultyStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.gate(stringify!($kind) == "write", stringify!($name))?;
                    self.inner.$name($($arg),*).await
                }
            )*
        }
    };
}

delegate!(AedStore {
    write fn create_aed(&self, data: &AedData) -> Result<Aed>;
    read fn get_aed(&self, id: i64) -> Result<Option<Aed>>;
    write fn replace_aed(&self, id: i64, data: &AedData) -> Result<Option<Aed>>;
    write fn delete_aed(&self, id: i64) -> Result<bool>;
    read fn list_aeds(&self, q: &ListQuery) -> Result<Page<Aed>>;
    read fn count_aeds(&self) -> Result<i64>;
    write fn upsert_aeds(&self, batch: &[AedData]) -> Result<Vec<UpsertOutcome>>;
    write fn insert_aeds_bulk(&self, batch: &[AedData]) -> Result<u64>;
    read fn load_aed_index(&self) -> Result<Vec<AedIndexRow>>;
});

delegate!(ReadinessStore {
    write fn set_aed_readiness(&self, id: i64, readiness: &Readiness, source: &str) -> Result<Option<Aed>>;
    write fn record_device_event(&self, event: &DeviceEventRecord, readiness: Option<&Readiness>, dates: &ConsumableDates, expect_rev: Option<i64>) -> Result<Recorded>;
    write fn write_readiness(&self, aed_id: i64, readiness: &Readiness, over: OverrideChange<'_>, source: &str, expect_rev: Option<i64>) -> Result<Written>;
    read fn device_snapshot(&self, aed_id: i64) -> Result<Option<DeviceSnapshot>>;
    read fn device_boot_seen(&self, aed_id: i64, boot: &str) -> Result<bool>;
    write fn set_readiness_override(&self, aed_id: i64, over: Option<&ReadinessOverride>, readiness: &Readiness, source: &str) -> Result<Option<Aed>>;
    read fn get_readiness_override(&self, aed_id: i64) -> Result<Option<ReadinessOverride>>;
    read fn readiness_overrides(&self) -> Result<Vec<ReadinessOverride>>;
    read fn attention_list(&self, q: &AttentionQuery) -> Result<Vec<AttentionItem>>;
    read fn readiness_history(&self, aed_id: i64, limit: u32) -> Result<Vec<ReadinessChange>>;
    read fn readiness_history_head(&self) -> Result<i64>;
    read fn readiness_changes_after(&self, after_id: i64, limit: u32) -> Result<Vec<(i64, i64, ReadinessStatus)>>;
    read fn device_event_seqs(&self, aed_id: i64) -> Result<Vec<i64>>;
    write fn save_device_states(&self, batch: &[DeviceState]) -> Result<()>;
    read fn device_states(&self) -> Result<Vec<DeviceState>>;
});

delegate!(IncidentStore {
    write fn create_incident(&self, state: &str, at: DateTime<Utc>) -> Result<i64>;
    write fn save_incident(&self, id: i64, state: &str, doc: &str, audit: &[(i64, DateTime<Utc>, String)]) -> Result<()>;
    read fn get_incident(&self, id: i64) -> Result<Option<String>>;
    read fn open_incidents(&self) -> Result<Vec<String>>;
    read fn incident_audit(&self, id: i64) -> Result<Vec<String>>;
    read fn rescuer_history(&self, rescuer_id: i64, before: Option<i64>, limit: u32) -> Result<Vec<String>>;
    write fn erase_incident_positions(&self, closed_before: DateTime<Utc>) -> Result<u64>;
    write fn erase_rescuer_positions(&self, rescuer_id: Option<i64>) -> Result<u64>;
    write fn claim_cad_call(&self, call_id: &str, body_sha256: &str, at: DateTime<Utc>) -> Result<crate::CadClaim>;
    write fn bind_cad_call(&self, call_id: &str, incident_id: i64) -> Result<()>;
    write fn release_cad_call(&self, call_id: &str) -> Result<()>;
});

delegate!(WorkOrderStore {
    write fn create_work_order(&self, aed_id: i64, title: &str, opened_by: &str, at: DateTime<Utc>) -> Result<WorkOrder>;
    read fn get_work_order(&self, id: i64) -> Result<Option<WorkOrder>>;
    read fn list_work_orders(&self, aed_id: Option<i64>, include_closed: bool) -> Result<Vec<WorkOrder>>;
    write fn update_work_order(&self, id: i64, update: &WorkOrderUpdate, at: DateTime<Utc>) -> Result<Option<WorkOrder>>;
    write fn add_work_order_note(&self, id: i64, author: &str, note: &str, at: DateTime<Utc>) -> Result<Option<WorkOrder>>;
});

delegate!(StationStore {
    write fn create_station(&self, data: &StationData) -> Result<Station>;
    read fn get_station(&self, id: i64) -> Result<Option<Station>>;
    write fn replace_station(&self, id: i64, data: &StationData) -> Result<Option<Station>>;
    write fn delete_station(&self, id: i64) -> Result<bool>;
    read fn list_stations(&self, q: &ListQuery) -> Result<Page<Station>>;
    write fn upsert_stations(&self, batch: &[StationData]) -> Result<Vec<UpsertOutcome>>;
});

delegate!(RescuerStore {
    write fn create_rescuer(&self, data: &RescuerData) -> Result<Rescuer>;
    read fn get_rescuer(&self, id: i64) -> Result<Option<Rescuer>>;
    write fn replace_rescuer(&self, id: i64, data: &RescuerData) -> Result<Option<Rescuer>>;
    write fn delete_rescuer(&self, id: i64) -> Result<bool>;
    read fn list_rescuers(&self, q: &ListQuery) -> Result<Page<Rescuer>>;
    write fn insert_rescuers_bulk(&self, batch: &[RescuerData]) -> Result<u64>;
});

delegate!(DistrictStore {
    write fn create_district(&self, data: &DistrictData) -> Result<District>;
    read fn get_district(&self, id: i64) -> Result<Option<District>>;
    write fn replace_district(&self, id: i64, data: &DistrictData) -> Result<Option<District>>;
    write fn delete_district(&self, id: i64) -> Result<bool>;
    read fn list_districts(&self, q: &ListQuery) -> Result<Page<District>>;
    write fn upsert_districts(&self, batch: &[DistrictData]) -> Result<Vec<UpsertOutcome>>;
    write fn assign_districts(&self, locate: &(dyn Fn(LatLon) -> Option<i64> + Sync)) -> Result<u64>;
});

delegate!(TokenStore {
    write fn create_token(&self, token: &NewToken) -> Result<TokenRecord>;
    read fn find_token(&self, token_hash: &str) -> Result<Option<TokenRecord>>;
    write fn revoke_token(&self, id: i64) -> Result<bool>;
    write fn set_token_role(&self, id: i64, role: aednet_core::Role) -> Result<Option<TokenRecord>>;
    read fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
});

delegate!(ArtifactStore {
    write fn put_artifact(&self, kind: &str, meta: &str, bytes: &[u8]) -> Result<i64>;
    read fn get_artifact(&self, kind: &str) -> Result<Option<Artifact>>;
    read fn artifact_versions(&self) -> Result<Vec<ArtifactInfo>>;
    write fn delete_artifact(&self, kind: &str) -> Result<bool>;
});

delegate!(NotifyStore {
    write fn put_push_subscription(&self, rescuer_id: i64, endpoint: &str, p256dh: &str, auth: &str) -> Result<crate::PushSubscription>;
    write fn delete_push_subscription(&self, rescuer_id: i64, endpoint: &str) -> Result<bool>;
    read fn push_subscriptions(&self, rescuer_id: i64) -> Result<Vec<crate::PushSubscription>>;
    write fn drop_push_endpoint(&self, endpoint: &str) -> Result<bool>;
    write fn record_delivery(&self, record: &crate::DeliveryRecord) -> Result<()>;
    write fn record_deliveries(&self, records: &[crate::DeliveryRecord]) -> Result<()>;
    read fn deliveries(&self, incident_id: i64) -> Result<Vec<crate::DeliveryRecord>>;
    write fn erase_deliveries(&self, closed_before: DateTime<Utc>) -> Result<u64>;
});

#[async_trait]
impl Store for FaultyStore {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    async fn ping(&self) -> Result<()> {
        self.gate(false, "ping")?;
        self.inner.ping().await
    }
}
