//! Maintenance work orders and their notes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;

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

#[async_trait]
pub trait WorkOrderStore: Send + Sync {
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
}
