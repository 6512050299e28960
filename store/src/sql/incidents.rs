//! [`IncidentStore`] for both backends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{db_err, plain, PgStore, SqliteStore};
use crate::incidents::{
    erase_in_doc, erase_in_entry, rescuers_in_audit, CadClaim, IncidentStore, Whose,
};
use crate::{Result, StoreError};

macro_rules! impl_incident_store {
    ($store:ident, $db:ty, $max_params:expr, $begin_write:expr) => {
        #[async_trait]
        impl IncidentStore for $store {
            async fn claim_cad_call(&self, call_id: &str, body_sha256: &str, at: DateTime<Utc>) -> Result<CadClaim> {
                let n = sqlx::query(
                    "INSERT INTO cad_calls (call_id, body_sha256, incident_id, received_at) VALUES ($1, $2, NULL, $3) \
                     ON CONFLICT (call_id) DO NOTHING",
                )
                .bind(call_id)
                .bind(body_sha256)
                .bind(at)
                .execute(&self.pool)
                .await
                .map_err(plain)?
                .rows_affected();
                if n == 1 {
                    return Ok(CadClaim::Claimed);
                }
                let (incident_id, body_sha256): (Option<i64>, String) = sqlx::query_as(
                    "SELECT incident_id, body_sha256 FROM cad_calls WHERE call_id = $1",
                )
                .bind(call_id)
                .fetch_one(&self.pool)
                .await
                .map_err(plain)?;
                Ok(CadClaim::Existing { incident_id, body_sha256 })
            }

            async fn bind_cad_call(&self, call_id: &str, incident_id: i64) -> Result<()> {
                sqlx::query("UPDATE cad_calls SET incident_id = $1 WHERE call_id = $2")
                    .bind(incident_id)
                    .bind(call_id)
                    .execute(&self.pool)
                    .await
                    .map_err(plain)?;
                Ok(())
            }

            async fn release_cad_call(&self, call_id: &str) -> Result<()> {
                sqlx::query("DELETE FROM cad_calls WHERE call_id = $1 AND incident_id IS NULL")
                    .bind(call_id)
                    .execute(&self.pool)
                    .await
                    .map_err(plain)?;
                Ok(())
            }

            async fn create_incident(&self, state: &str, at: DateTime<Utc>) -> Result<i64> {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO incidents (state, doc, created_at, updated_at) VALUES ($1, '{}', $2, $2) RETURNING id",
                )
                .bind(state)
                .bind(at)
                .fetch_all(&self.pool)
                .await
                .and_then(crate::sql::first_row)
                .map_err(plain)?;
                Ok(id)
            }

            async fn save_incident(&self, id: i64, state: &str, doc: &str, audit: &[(i64, DateTime<Utc>, String)]) -> Result<()> {
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let n = sqlx::query("UPDATE incidents SET state = $1, doc = $2, updated_at = $3 WHERE id = $4")
                    .bind(state)
                    .bind(doc)
                    .bind(Utc::now())
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(plain)?
                    .rows_affected();
                if n == 0 {
                    return Err(StoreError::Conflict { field: Some("incident_id".into()), message: format!("no incident {id}") });
                }
                // One statement per chunk, not per entry: a save is a handful of round trips
                // however many entries it appends.
                for chunk in audit.chunks($max_params / 4) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO incident_audit (incident_id, seq, at, entry) ");
                    qb.push_values(chunk, |mut b, (seq, at, entry)| {
                        b.push_bind(id).push_bind(*seq).push_bind(*at).push_bind(entry.as_str());
                    });
                    qb.build().execute(&mut *tx).await.map_err(|e| db_err(e, Some("audit")))?;
                }
                let rescuers = rescuers_in_audit(audit);
                for chunk in rescuers.chunks($max_params / 2) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO rescuer_incidents (rescuer_id, incident_id) ");
                    qb.push_values(chunk, |mut b, rescuer| {
                        b.push_bind(*rescuer).push_bind(id);
                    });
                    qb.push(" ON CONFLICT DO NOTHING");
                    qb.build().execute(&mut *tx).await.map_err(plain)?;
                }
                tx.commit().await.map_err(plain)?;
                Ok(())
            }

            async fn rescuer_history(&self, rescuer_id: i64, before: Option<i64>, limit: u32) -> Result<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT i.doc FROM rescuer_incidents r JOIN incidents i ON i.id = r.incident_id \
                     WHERE r.rescuer_id = $1 AND r.incident_id < $2 ORDER BY r.incident_id DESC LIMIT $3",
                )
                .bind(rescuer_id)
                .bind(before.unwrap_or(i64::MAX))
                .bind(i64::from(limit.clamp(1, 100)))
                .fetch_all(&self.pool)
                .await
                .map_err(plain)?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }

            async fn get_incident(&self, id: i64) -> Result<Option<String>> {
                let row: Option<(String,)> = sqlx::query_as("SELECT doc FROM incidents WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(plain)?;
                Ok(row.map(|r| r.0))
            }

            async fn open_incidents(&self) -> Result<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT doc FROM incidents WHERE state NOT IN ('closed', 'cancelled') ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(plain)?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }

            async fn incident_audit(&self, id: i64) -> Result<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as("SELECT entry FROM incident_audit WHERE incident_id = $1 ORDER BY seq")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(plain)?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }

            async fn erase_incident_positions(&self, closed_before: DateTime<Utc>) -> Result<u64> {
                let mut erased = 0;
                loop {
                    let ids: Vec<(i64,)> = sqlx::query_as(
                        "SELECT id FROM incidents WHERE positions_erased_at IS NULL \
                         AND state IN ('closed', 'cancelled') AND updated_at < $1 ORDER BY id LIMIT 500",
                    )
                    .bind(closed_before)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(plain)?;
                    for (id,) in &ids {
                        let mut tx = self.pool.begin_with($begin_write).await.map_err(plain)?;
                        erased += Self::erase_in(&mut tx, *id, &Whose::Anyone).await?;
                        sqlx::query("UPDATE incidents SET positions_erased_at = $1 WHERE id = $2")
                            .bind(Utc::now())
                            .bind(*id)
                            .execute(&mut *tx)
                            .await
                            .map_err(plain)?;
                        tx.commit().await.map_err(plain)?;
                    }
                    if ids.len() < 500 {
                        return Ok(erased);
                    }
                }
            }

            async fn erase_rescuer_positions(&self, rescuer_id: Option<i64>) -> Result<u64> {
                // Their history links go too (the rescuer is gone, or going).
                match rescuer_id {
                    Some(r) => sqlx::query("DELETE FROM rescuer_incidents WHERE rescuer_id = $1").bind(r),
                    None => sqlx::query(
                        "DELETE FROM rescuer_incidents WHERE rescuer_id NOT IN (SELECT id FROM rescuers)",
                    ),
                }
                .execute(&self.pool)
                .await
                .map_err(plain)?;
                let whose = match rescuer_id {
                    Some(r) => Whose::Rescuer(r),
                    None => {
                        let rows: Vec<(i64,)> = sqlx::query_as("SELECT id FROM rescuers")
                            .fetch_all(&self.pool)
                            .await
                            .map_err(plain)?;
                        Whose::NotIn(rows.into_iter().map(|r| r.0).collect())
                    }
                };
                // Incidents past retention have no positions left. The audit rows hold them
                // (documents written before the trail left the document may too).
                let ids: Vec<(i64,)> = sqlx::query_as(
                    "SELECT id FROM incidents WHERE positions_erased_at IS NULL \
                     AND (doc LIKE '%\"position\":%' OR id IN \
                     (SELECT incident_id FROM incident_audit WHERE entry LIKE '%\"position\":%')) \
                     ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(plain)?;
                let mut erased = 0;
                for (id,) in ids {
                    let mut tx = self.pool.begin_with($begin_write).await.map_err(plain)?;
                    erased += Self::erase_in(&mut tx, id, &whose).await?;
                    tx.commit().await.map_err(plain)?;
                }
                Ok(erased)
            }
        }

        impl $store {
            /// Erases the positions `whose` takes from one incident's document and audit log,
            /// in `tx`; returns how many audit entries lost one. `tx` must have begun as a
            /// write (`BEGIN IMMEDIATE` on SQLite): it reads, then writes what it read, and a
            /// deferred transaction whose snapshot another write overtook cannot upgrade
            /// (`SQLITE_BUSY` at once, no busy wait) — a rescuer's deletion revokes their
            /// tokens at the same moment, and the erasure failed.
            async fn erase_in(tx: &mut sqlx::Transaction<'_, $db>, id: i64, whose: &Whose) -> Result<u64> {
                let doc: Option<(String,)> = sqlx::query_as("SELECT doc FROM incidents WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(plain)?;
                if let Some(new) = doc.and_then(|(d,)| erase_in_doc(&d, whose)) {
                    sqlx::query("UPDATE incidents SET doc = $1 WHERE id = $2")
                        .bind(new)
                        .bind(id)
                        .execute(&mut **tx)
                        .await
                        .map_err(plain)?;
                }
                // A JSON key is the only place `"position":` appears unescaped.
                let rows: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT id, entry FROM incident_audit WHERE incident_id = $1 AND entry LIKE '%\"position\":%'",
                )
                .bind(id)
                .fetch_all(&mut **tx)
                .await
                .map_err(plain)?;
                let mut n = 0;
                for (row, entry) in rows {
                    if let Some(new) = erase_in_entry(&entry, whose) {
                        sqlx::query("UPDATE incident_audit SET entry = $1 WHERE id = $2")
                            .bind(new)
                            .bind(row)
                            .execute(&mut **tx)
                            .await
                            .map_err(plain)?;
                        n += 1;
                    }
                }
                Ok(n)
            }
        }
    };
}

// SQLite's limit on bound parameters per statement is 32,766; PostgreSQL's is 65,535.
// A transaction that reads and then writes what it read begins as a write: SQLite's
// `BEGIN IMMEDIATE` takes the write lock first (waiting the busy timeout for it).
impl_incident_store!(SqliteStore, sqlx::Sqlite, 32_766usize, "BEGIN IMMEDIATE");
impl_incident_store!(PgStore, sqlx::Postgres, 65_535usize, "BEGIN");
