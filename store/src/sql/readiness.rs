//! [`ReadinessStore`] for both backends: readiness and its history, manual overrides, the
//! device event log and coalesced device state.

use aednet_core::aed::{Aed, Readiness, ReadinessStatus};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::aeds::AedRow;
use super::{corrupt, db_err, plain, PgStore, SqliteStore};
use crate::readiness::{
    AttentionItem, AttentionQuery, ConsumableDates, DeviceEventRecord, DeviceSnapshot, DeviceState,
    OverrideChange, ReadinessChange, ReadinessOverride, ReadinessStore, Recorded, Written,
};
use crate::Result;

#[derive(sqlx::FromRow)]
struct OverrideRow {
    aed_id: i64,
    status: String,
    reason: Option<String>,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    set_by: String,
}

impl OverrideRow {
    fn into_override(self) -> Result<ReadinessOverride> {
        Ok(ReadinessOverride {
            status: ReadinessStatus::parse(&self.status)
                .ok_or_else(|| corrupt("status", self.aed_id, &self.status))?,
            aed_id: self.aed_id,
            reason: self.reason,
            since: self.since,
            until: self.until,
            set_by: self.set_by,
        })
    }
}

/// An AED row with its readiness revision.
#[derive(sqlx::FromRow)]
struct RevRow {
    #[sqlx(flatten)]
    aed: AedRow,
    readiness_rev: i64,
}

impl RevRow {
    fn into_written(self) -> Result<Written> {
        Ok(Written::Done {
            rev: self.readiness_rev,
            aed: Box::new(self.aed.into_aed()?),
        })
    }
}

macro_rules! impl_readiness_store {
    ($store:ident, $db:ty, $max_params:expr) => {
        impl $store {
            /// Sets an AED's readiness, bumps its revision and appends it to its history, in the
            /// caller's transaction — with `expect_rev`, only if the revision is still that one.
            /// Every readiness write goes through here (the API, device events, the watchdog,
            /// guardian overrides). Nothing is written unless the outcome is `Done`.
            async fn write_readiness_tx(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: i64,
                readiness: &Readiness,
                source: &str,
                expect_rev: Option<i64>,
            ) -> Result<Written> {
                let sql = if expect_rev.is_some() {
                    "UPDATE aeds SET status = $1, status_reason = $2, status_since = $3, updated_at = $4, \
                     readiness_rev = readiness_rev + 1 WHERE id = $5 AND readiness_rev = $6 RETURNING *"
                } else {
                    "UPDATE aeds SET status = $1, status_reason = $2, status_since = $3, updated_at = $4, \
                     readiness_rev = readiness_rev + 1 WHERE id = $5 RETURNING *"
                };
                let mut q = sqlx::query_as::<_, RevRow>(sql)
                    .bind(readiness.status.as_str())
                    .bind(&readiness.reason)
                    .bind(readiness.since)
                    .bind(Utc::now())
                    .bind(id);
                if let Some(r) = expect_rev {
                    q = q.bind(r);
                }
                let Some(row) = q.fetch_optional(&mut **tx).await.map_err(plain)? else {
                    if expect_rev.is_none() {
                        return Ok(Written::Missing);
                    }
                    let exists: Option<(i64,)> = sqlx::query_as("SELECT id FROM aeds WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut **tx)
                        .await
                        .map_err(plain)?;
                    return Ok(if exists.is_some() { Written::Stale } else { Written::Missing });
                };
                sqlx::query("INSERT INTO readiness_history (aed_id, status, reason, since, source) VALUES ($1, $2, $3, $4, $5)")
                    .bind(id)
                    .bind(readiness.status.as_str())
                    .bind(&readiness.reason)
                    .bind(readiness.since)
                    .bind(source)
                    .execute(&mut **tx)
                    .await
                    .map_err(plain)?;
                row.into_written()
            }
        }

        #[async_trait]
        impl ReadinessStore for $store {
            #[tracing::instrument(skip(self, readiness), fields(status = ?readiness.status))]
            async fn set_aed_readiness(&self, id: i64, readiness: &Readiness, source: &str) -> Result<Option<Aed>> {
                match self.write_readiness(id, readiness, OverrideChange::Keep, source, None).await? {
                    Written::Done { aed, .. } => Ok(Some(*aed)),
                    Written::Stale | Written::Missing => Ok(None),
                }
            }

            #[tracing::instrument(skip(self, readiness, over), fields(status = ?readiness.status))]
            async fn write_readiness(
                &self,
                aed_id: i64,
                readiness: &Readiness,
                over: OverrideChange<'_>,
                source: &str,
                expect_rev: Option<i64>,
            ) -> Result<Written> {
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let written = Self::write_readiness_tx(&mut tx, aed_id, readiness, source, expect_rev).await?;
                if !matches!(written, Written::Done { .. }) {
                    return Ok(written);
                }
                match over {
                    OverrideChange::Keep => {}
                    OverrideChange::Set(o) => {
                        sqlx::query(
                            "INSERT INTO readiness_overrides (aed_id, status, reason, since, until, set_by) \
                             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (aed_id) DO UPDATE SET \
                             status = excluded.status, reason = excluded.reason, since = excluded.since, \
                             until = excluded.until, set_by = excluded.set_by",
                        )
                        .bind(aed_id)
                        .bind(o.status.as_str())
                        .bind(&o.reason)
                        .bind(o.since)
                        .bind(o.until)
                        .bind(&o.set_by)
                        .execute(&mut *tx)
                        .await
                        .map_err(plain)?;
                    }
                    OverrideChange::Clear => {
                        sqlx::query("DELETE FROM readiness_overrides WHERE aed_id = $1")
                            .bind(aed_id)
                            .execute(&mut *tx)
                            .await
                            .map_err(plain)?;
                    }
                }
                tx.commit().await.map_err(plain)?;
                Ok(written)
            }

            async fn record_device_event(
                &self,
                ev: &DeviceEventRecord,
                readiness: Option<&Readiness>,
                dates: &ConsumableDates,
                expect_rev: Option<i64>,
            ) -> Result<Recorded> {
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let inserted = sqlx::query(
                    "INSERT INTO device_events (aed_id, boot, seq, kind, body, device_ts, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (aed_id, boot, seq) DO NOTHING",
                )
                .bind(ev.aed_id)
                .bind(&ev.boot)
                .bind(ev.seq)
                .bind(&ev.kind)
                .bind(&ev.body)
                .bind(ev.device_ts)
                .bind(ev.received_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| db_err(e, Some("aed_id")))?
                .rows_affected();
                if inserted == 0 {
                    return Ok(Recorded::Duplicate);
                }
                let rev = match readiness {
                    Some(r) => match Self::write_readiness_tx(&mut tx, ev.aed_id, r, "device", expect_rev).await? {
                        Written::Done { rev, .. } => rev,
                        // Dropping the transaction rolls the event back: the caller re-reads and
                        // sends it again.
                        Written::Stale | Written::Missing => return Ok(Recorded::Stale),
                    },
                    None => {
                        // The insert above holds the write lock (SQLite) and the row's key
                        // (PostgreSQL): a revision read now is the one this message follows.
                        let (rev,): (i64,) = sqlx::query_as("SELECT readiness_rev FROM aeds WHERE id = $1")
                            .bind(ev.aed_id)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(plain)?;
                        if expect_rev.is_some_and(|e| e != rev) {
                            return Ok(Recorded::Stale);
                        }
                        rev
                    }
                };
                if dates.pads_expiry.is_some() || dates.battery_expiry.is_some() {
                    sqlx::query(
                        "UPDATE aeds SET pads_expiry = COALESCE($1, pads_expiry), \
                         battery_expiry = COALESCE($2, battery_expiry), updated_at = $3 WHERE id = $4",
                    )
                    .bind(dates.pads_expiry)
                    .bind(dates.battery_expiry)
                    .bind(Utc::now())
                    .bind(ev.aed_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(plain)?;
                }
                tx.commit().await.map_err(plain)?;
                Ok(Recorded::New { rev })
            }

            async fn set_readiness_override(
                &self,
                aed_id: i64,
                over: Option<&ReadinessOverride>,
                readiness: &Readiness,
                source: &str,
            ) -> Result<Option<Aed>> {
                let change = match over {
                    Some(o) => OverrideChange::Set(o),
                    None => OverrideChange::Clear,
                };
                match self.write_readiness(aed_id, readiness, change, source, None).await? {
                    Written::Done { aed, .. } => Ok(Some(*aed)),
                    Written::Stale | Written::Missing => Ok(None),
                }
            }

            async fn device_snapshot(&self, aed_id: i64) -> Result<Option<DeviceSnapshot>> {
                let Some(row) = sqlx::query_as::<_, RevRow>("SELECT * FROM aeds WHERE id = $1")
                    .bind(aed_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(plain)?
                else {
                    return Ok(None);
                };
                let over = self.get_readiness_override(aed_id).await?;
                let boot: Option<(String,)> =
                    sqlx::query_as("SELECT boot FROM device_events WHERE aed_id = $1 ORDER BY id DESC LIMIT 1")
                        .bind(aed_id)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(plain)?;
                let boot = boot.map(|b| b.0).unwrap_or_default();
                let (last_seq,): (Option<i64>,) =
                    sqlx::query_as("SELECT MAX(seq) FROM device_events WHERE aed_id = $1 AND boot = $2")
                        .bind(aed_id)
                        .bind(&boot)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(plain)?;
                Ok(Some(DeviceSnapshot {
                    rev: row.readiness_rev,
                    aed: row.aed.into_aed()?,
                    over,
                    boot,
                    last_seq,
                }))
            }

            async fn device_boot_seen(&self, aed_id: i64, boot: &str) -> Result<bool> {
                let found: Option<(i64,)> =
                    sqlx::query_as("SELECT seq FROM device_events WHERE aed_id = $1 AND boot = $2 LIMIT 1")
                        .bind(aed_id)
                        .bind(boot)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(plain)?;
                Ok(found.is_some())
            }

            async fn get_readiness_override(&self, aed_id: i64) -> Result<Option<ReadinessOverride>> {
                sqlx::query_as::<_, OverrideRow>("SELECT * FROM readiness_overrides WHERE aed_id = $1")
                    .bind(aed_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(plain)?
                    .map(OverrideRow::into_override)
                    .transpose()
            }

            async fn readiness_overrides(&self) -> Result<Vec<ReadinessOverride>> {
                sqlx::query_as::<_, OverrideRow>("SELECT * FROM readiness_overrides ORDER BY aed_id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(plain)?
                    .into_iter()
                    .map(OverrideRow::into_override)
                    .collect()
            }

            async fn attention_list(&self, q: &AttentionQuery) -> Result<Vec<AttentionItem>> {
                use sqlx::Row as _;
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT a.*, o.status AS o_status, o.reason AS o_reason, o.since AS o_since, \
                     o.until AS o_until, o.set_by AS o_set_by \
                     FROM aeds a LEFT JOIN readiness_overrides o ON o.aed_id = a.id WHERE (",
                );
                // Each arm of the OR has its own index (status, pads_expiry, battery_expiry).
                if !q.statuses.is_empty() {
                    qb.push("a.status IN (");
                    let mut sep = qb.separated(", ");
                    for st in &q.statuses {
                        sep.push_bind(st.as_str());
                    }
                    qb.push(") OR ");
                }
                qb.push("a.pads_expiry <= ").push_bind(q.horizon);
                qb.push(" OR a.battery_expiry <= ").push_bind(q.horizon).push(")");
                if let Some(d) = q.district_id {
                    qb.push(" AND a.district_id = ").push_bind(d);
                }
                qb.push(" ORDER BY a.status_since, a.id LIMIT ").push_bind(i64::from(q.limit.max(1)));
                let rows = qb.build().fetch_all(&self.pool).await.map_err(plain)?;
                rows.iter()
                    .map(|r| {
                        let aed = <AedRow as sqlx::FromRow<_>>::from_row(r).map_err(plain)?.into_aed()?;
                        let status: Option<String> = r.try_get("o_status").map_err(plain)?;
                        let over = match status {
                            None => None,
                            Some(status) => Some(OverrideRow {
                                aed_id: aed.id,
                                status,
                                reason: r.try_get("o_reason").map_err(plain)?,
                                since: r.try_get("o_since").map_err(plain)?,
                                until: r.try_get("o_until").map_err(plain)?,
                                set_by: r.try_get("o_set_by").map_err(plain)?,
                            }
                            .into_override()?),
                        };
                        Ok(AttentionItem { aed, over })
                    })
                    .collect()
            }

            async fn readiness_history(&self, aed_id: i64, limit: u32) -> Result<Vec<ReadinessChange>> {
                let rows: Vec<(String, Option<String>, DateTime<Utc>, String)> = sqlx::query_as(
                    "SELECT status, reason, since, source FROM readiness_history WHERE aed_id = $1 ORDER BY id DESC LIMIT $2",
                )
                .bind(aed_id)
                .bind(i64::from(limit.clamp(1, 1000)))
                .fetch_all(&self.pool)
                .await
                .map_err(plain)?;
                rows.into_iter()
                    .map(|(status, reason, since, source)| {
                        Ok(ReadinessChange {
                            status: ReadinessStatus::parse(&status).ok_or_else(|| corrupt("status", aed_id, &status))?,
                            reason,
                            since,
                            source,
                        })
                    })
                    .collect()
            }

            async fn readiness_history_head(&self) -> Result<i64> {
                let (id,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM readiness_history")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(plain)?;
                Ok(id)
            }

            async fn readiness_changes_after(&self, after_id: i64, limit: u32) -> Result<Vec<(i64, i64, ReadinessStatus)>> {
                let rows: Vec<(i64, i64, String)> = sqlx::query_as(
                    "SELECT h.id, a.id, a.status FROM readiness_history h JOIN aeds a ON a.id = h.aed_id WHERE h.id > $1 ORDER BY h.id LIMIT $2",
                )
                .bind(after_id)
                .bind(i64::from(limit.clamp(1, 100_000)))
                .fetch_all(&self.pool)
                .await
                .map_err(plain)?;
                rows.into_iter()
                    .map(|(h, id, status)| {
                        Ok((h, id, ReadinessStatus::parse(&status).ok_or_else(|| corrupt("status", id, &status))?))
                    })
                    .collect()
            }

            async fn device_event_seqs(&self, aed_id: i64) -> Result<Vec<i64>> {
                let rows: Vec<(i64,)> = sqlx::query_as("SELECT seq FROM device_events WHERE aed_id = $1 ORDER BY seq")
                    .bind(aed_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(plain)?;
                Ok(rows.into_iter().map(|r| r.0).collect())
            }

            async fn save_device_states(&self, batch: &[DeviceState]) -> Result<()> {
                if batch.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await.map_err(plain)?;
                // 7 parameters a row; stay far below both backends' limits.
                for chunk in batch.chunks(1000) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO device_state (aed_id, last_seen_at, last_seq, battery_pct, temperature_c, signal_dbm, firmware) ",
                    );
                    qb.push_values(chunk, |mut b, d| {
                        b.push_bind(d.aed_id)
                            .push_bind(d.last_seen_at)
                            .push_bind(d.last_seq)
                            .push_bind(d.battery_pct)
                            .push_bind(d.temperature_c)
                            .push_bind(d.signal_dbm)
                            .push_bind(d.firmware.clone());
                    });
                    qb.push(
                        " ON CONFLICT (aed_id) DO UPDATE SET last_seen_at = excluded.last_seen_at, \
                         last_seq = excluded.last_seq, \
                         battery_pct = COALESCE(excluded.battery_pct, device_state.battery_pct), \
                         temperature_c = COALESCE(excluded.temperature_c, device_state.temperature_c), \
                         signal_dbm = COALESCE(excluded.signal_dbm, device_state.signal_dbm), \
                         firmware = COALESCE(excluded.firmware, device_state.firmware)",
                    );
                    qb.build().execute(&mut *tx).await.map_err(|e| db_err(e, Some("aed_id")))?;
                }
                tx.commit().await.map_err(plain)?;
                Ok(())
            }

            async fn device_states(&self) -> Result<Vec<DeviceState>> {
                sqlx::query_as::<_, DeviceState>("SELECT * FROM device_state ORDER BY aed_id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(plain)
            }
        }
    };
}

// SQLite's limit on bound parameters per statement is 32,766; PostgreSQL's is 65,535.
impl_readiness_store!(SqliteStore, sqlx::Sqlite, 32_766usize);
impl_readiness_store!(PgStore, sqlx::Postgres, 65_535usize);
