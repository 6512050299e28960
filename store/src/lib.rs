//! Persistence. [`Store`] is the one interface the rest of aednet writes and reads through; it
//! has two sqlx backends, SQLite (the embedded default: one file, WAL) and PostgreSQL
//! (production), chosen by the database URL. Each backend embeds its own migrations from
//! `migrations/sqlite` and `migrations/postgres` and runs them at start-up.
//!
//! Writes are all-or-nothing (one transaction per call); constraint violations come back as
//! [`StoreError::Conflict`], never as an opaque database error, so the HTTP layer can answer 409.

use aednet_core::aed::ReadinessStatus;
use aednet_core::geo_util::BBox;
use aednet_core::station::StationKind;
use async_trait::async_trait;
use serde::Serialize;
use std::sync::Arc;

pub mod aeds;
pub mod artifacts;
pub mod districts;
pub mod incidents;
pub mod notify;
pub mod readiness;
pub mod rescuers;
mod sql;
pub mod stations;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;
pub mod work_orders;

pub use aeds::{AedIndexRow, AedStore};
pub use artifacts::{Artifact, ArtifactInfo, ArtifactStore};
pub use districts::DistrictStore;
pub use incidents::{CadClaim, IncidentStore};
pub use notify::{
    Channel, DeliveryRecord, DeliveryState, MessageKey, MessageKind, NotifyStore, PushSubscription,
};
pub use readiness::{
    AttentionItem, AttentionQuery, ConsumableDates, DeviceEventRecord, DeviceSnapshot, DeviceState,
    OverrideChange, ReadinessChange, ReadinessOverride, ReadinessStore, Recorded, Written,
};
pub use rescuers::RescuerStore;
pub use sql::connect;
pub use stations::StationStore;
pub use tokens::{NewToken, TokenRecord, TokenStore};
pub use work_orders::{WorkOrder, WorkOrderNote, WorkOrderStore, WorkOrderUpdate};

/// The store's traits, for `use aednet_store::prelude::*`: [`Store`] is made of one trait per
/// concern, and a method of one of them is callable on a `DynStore` where that trait is in scope.
pub mod prelude {
    pub use crate::aeds::AedStore;
    pub use crate::artifacts::ArtifactStore;
    pub use crate::districts::DistrictStore;
    pub use crate::incidents::IncidentStore;
    pub use crate::notify::NotifyStore;
    pub use crate::readiness::ReadinessStore;
    pub use crate::rescuers::RescuerStore;
    pub use crate::stations::StationStore;
    pub use crate::tokens::TokenStore;
    pub use crate::work_orders::WorkOrderStore;
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

impl StoreError {
    /// The database could not do it now but may in a moment: unreachable, restarting, busy,
    /// locked or full (PostgreSQL classes 08, 40, 53, 57, 58; SQLite BUSY, LOCKED, FULL,
    /// IOERR, CANTOPEN). The API answers these with 503, and whoever wrote tries again.
    pub fn is_transient(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(d) => {
                let code = d.code().unwrap_or_default();
                if let Ok(n) = code.parse::<i64>() {
                    // SQLite: the primary result code is the low byte of an extended one.
                    matches!(n & 0xff, 5 | 6 | 10 | 13 | 14)
                } else {
                    ["08", "40", "53", "57", "58"]
                        .iter()
                        .any(|class| code.starts_with(class))
                }
            }
            _ => false,
        }
    }
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

/// The whole store: one trait per concern (AEDs, readiness and devices, incidents, work orders,
/// stations, rescuers, districts, tokens, artifacts, push subscriptions and deliveries); `use aednet_store::prelude::*` brings
/// them all into scope.
#[async_trait]
pub trait Store:
    AedStore
    + ReadinessStore
    + IncidentStore
    + WorkOrderStore
    + StationStore
    + RescuerStore
    + DistrictStore
    + TokenStore
    + ArtifactStore
    + NotifyStore
    + Send
    + Sync
    + std::fmt::Debug
{
    fn backend(&self) -> Backend;
    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<()>;
}

pub type DynStore = Arc<dyn Store>;
