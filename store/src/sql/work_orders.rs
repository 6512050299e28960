//! [`WorkOrderStore`] for both backends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::{db_err, plain, PgStore, SqliteStore};
use crate::work_orders::{WorkOrder, WorkOrderNote, WorkOrderStore, WorkOrderUpdate};
use crate::{Result, StoreError};

#[derive(sqlx::FromRow)]
struct WorkOrderRow {
    id: i64,
    aed_id: i64,
    title: String,
    status: String,
    assignee: Option<String>,
    opened_by: String,
    opened_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    resolution: Option<String>,
}

impl WorkOrderRow {
    fn into_order(self, notes: Vec<WorkOrderNote>) -> WorkOrder {
        WorkOrder {
            id: self.id,
            aed_id: self.aed_id,
            title: self.title,
            status: self.status,
            assignee: self.assignee,
            opened_by: self.opened_by,
            opened_at: self.opened_at,
            closed_at: self.closed_at,
            resolution: self.resolution,
            notes,
        }
    }
}

macro_rules! impl_work_order_store {
    ($store:ident, $db:ty, $max_params:expr) => {
        #[async_trait]
        impl WorkOrderStore for $store {
            async fn create_work_order(&self, aed_id: i64, title: &str, opened_by: &str, at: DateTime<Utc>) -> Result<WorkOrder> {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO work_orders (aed_id, title, status, opened_by, opened_at) VALUES ($1, $2, 'open', $3, $4) RETURNING id",
                )
                .bind(aed_id)
                .bind(title)
                .bind(opened_by)
                .bind(at)
                .fetch_all(&self.pool)
                .await
                .and_then(crate::sql::first_row)
                .map_err(|e| db_err(e, Some("aed_id")))?;
                self.get_work_order(id).await?.ok_or_else(|| StoreError::Corrupt(format!("work order {id} vanished")))
            }

            async fn get_work_order(&self, id: i64) -> Result<Option<WorkOrder>> {
                let row: Option<WorkOrderRow> = sqlx::query_as("SELECT * FROM work_orders WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(plain)?;
                let Some(row) = row else { return Ok(None) };
                let notes: Vec<WorkOrderNote> = sqlx::query_as(
                    "SELECT author, note, at FROM work_order_notes WHERE work_order_id = $1 ORDER BY id",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(plain)?;
                Ok(Some(row.into_order(notes)))
            }

            async fn list_work_orders(&self, aed_id: Option<i64>, include_closed: bool) -> Result<Vec<WorkOrder>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM work_orders WHERE 1 = 1");
                if let Some(a) = aed_id {
                    qb.push(" AND aed_id = ").push_bind(a);
                }
                if !include_closed {
                    qb.push(" AND status <> 'closed'");
                }
                qb.push(" ORDER BY id LIMIT 1000");
                let rows: Vec<WorkOrderRow> = qb.build_query_as().fetch_all(&self.pool).await.map_err(plain)?;
                Ok(rows.into_iter().map(|r| r.into_order(Vec::new())).collect())
            }

            async fn update_work_order(&self, id: i64, update: &WorkOrderUpdate, at: DateTime<Utc>) -> Result<Option<WorkOrder>> {
                let q = match update {
                    WorkOrderUpdate::Assign { assignee } => sqlx::query(
                        "UPDATE work_orders SET status = 'assigned', assignee = $1 WHERE id = $2 AND status <> 'closed'",
                    )
                    .bind(assignee.clone())
                    .bind(id),
                    WorkOrderUpdate::Close { resolution } => sqlx::query(
                        "UPDATE work_orders SET status = 'closed', resolution = $1, closed_at = $2 WHERE id = $3 AND status <> 'closed'",
                    )
                    .bind(resolution.clone())
                    .bind(at)
                    .bind(id),
                };
                let n = q.execute(&self.pool).await.map_err(plain)?.rows_affected();
                if n == 0 {
                    return Ok(None);
                }
                self.get_work_order(id).await
            }

            async fn add_work_order_note(&self, id: i64, author: &str, note: &str, at: DateTime<Utc>) -> Result<Option<WorkOrder>> {
                if self.get_work_order(id).await?.is_none() {
                    return Ok(None);
                }
                sqlx::query("INSERT INTO work_order_notes (work_order_id, author, note, at) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(author)
                    .bind(note)
                    .bind(at)
                    .execute(&self.pool)
                    .await
                    .map_err(plain)?;
                self.get_work_order(id).await
            }
        }
    };
}

// SQLite's limit on bound parameters per statement is 32,766; PostgreSQL's is 65,535.
impl_work_order_store!(SqliteStore, sqlx::Sqlite, 32_766usize);
impl_work_order_store!(PgStore, sqlx::Postgres, 65_535usize);
