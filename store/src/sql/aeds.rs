//! [`AedStore`] for both backends, and the AED row every other concern that returns an [`Aed`]
//! decodes (readiness, attention lists).

use std::collections::HashMap;
use std::sync::Arc;

use aednet_core::aed::{Access, Aed, AedData, Readiness, ReadinessStatus};
use aednet_core::geo_util::LatLon;
use aednet_core::{Secret, Tags};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use sqlx::types::Json;
use sqlx::QueryBuilder;

use super::{
    corrupt, db_err, page_of, parse_tz, placeholders, plain, PgStore, SourceKey, SqliteStore,
};
use crate::aeds::{AedIndexRow, AedStore};
use crate::{ListQuery, Page, Result, StoreError, UpsertOutcome};

// Rows and their conversion to domain values (shared by both backends).

const AED_COLS: &str =
    "source, external_ref, lat, lon, name, address, operator, phone, indoor, level, \
    location_description, access, opening_hours, opening_hours_valid, time_zone, cabinet_locked, \
    cabinet_code, device_model, device_serial, pads_expiry, battery_expiry, status, status_reason, \
    status_since, district_id, tags";
/// Number of columns in [`AED_COLS`]; `created_at`/`updated_at` follow them in inserts.
const AED_NCOLS: usize = 26;

/// `col = $n` for the columns of [`AED_COLS`] numbered from `from`, except readiness (`status`,
/// `status_reason`, `status_since`): an update of the record never writes readiness, which has
/// one writer ([`crate::ReadinessStore::write_readiness`]); copying a value read earlier would
/// undo telemetry that arrived in between. Their parameters stay bound, unused.
fn set_list_keeping_readiness(from: usize) -> String {
    AED_COLS
        .split(',')
        .map(str::trim)
        .enumerate()
        .filter(|(_, c)| !matches!(*c, "status" | "status_reason" | "status_since"))
        .map(|(i, c)| format!("{c} = ${}", from + i))
        .collect::<Vec<_>>()
        .join(", ")
}

const INDEX_SQL: &str = "SELECT id, lat, lon, access, status, indoor, opening_hours, time_zone, cabinet_locked, district_id, \
    name, address, operator, level, location_description FROM aeds ORDER BY id";

#[derive(sqlx::FromRow)]
pub(super) struct AedRow {
    id: i64,
    source: String,
    external_ref: Option<String>,
    lat: f64,
    lon: f64,
    name: Option<String>,
    address: Option<String>,
    operator: Option<String>,
    phone: Option<String>,
    indoor: Option<bool>,
    level: Option<String>,
    location_description: Option<String>,
    access: String,
    opening_hours: Option<String>,
    opening_hours_valid: bool,
    time_zone: String,
    cabinet_locked: bool,
    cabinet_code: Option<String>,
    device_model: Option<String>,
    device_serial: Option<String>,
    pads_expiry: Option<NaiveDate>,
    battery_expiry: Option<NaiveDate>,
    status: String,
    status_reason: Option<String>,
    status_since: DateTime<Utc>,
    district_id: Option<i64>,
    tags: Json<Tags>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl AedRow {
    pub(super) fn into_aed(self) -> Result<Aed> {
        let id = self.id;
        let location = LatLon::new(self.lat, self.lon)
            .map_err(|e| StoreError::Corrupt(format!("row {id}: {e}")))?;
        Ok(Aed {
            id,
            data: AedData {
                source: self.source,
                external_ref: self.external_ref,
                location,
                name: self.name,
                address: self.address,
                operator: self.operator,
                phone: self.phone,
                indoor: self.indoor,
                level: self.level,
                location_description: self.location_description,
                access: Access::parse(&self.access)
                    .ok_or_else(|| corrupt("access", id, &self.access))?,
                opening_hours: self.opening_hours,
                opening_hours_valid: self.opening_hours_valid,
                time_zone: parse_tz(id, &self.time_zone)?,
                cabinet_locked: self.cabinet_locked,
                cabinet_code: self.cabinet_code.map(Secret::new),
                device_model: self.device_model,
                device_serial: self.device_serial,
                pads_expiry: self.pads_expiry,
                battery_expiry: self.battery_expiry,
                readiness: Readiness {
                    status: ReadinessStatus::parse(&self.status)
                        .ok_or_else(|| corrupt("status", id, &self.status))?,
                    reason: self.status_reason,
                    since: self.status_since,
                },
                district_id: self.district_id,
                tags: self.tags.0,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AedIndexDbRow {
    id: i64,
    lat: f64,
    lon: f64,
    access: String,
    status: String,
    indoor: Option<bool>,
    opening_hours: Option<String>,
    time_zone: String,
    cabinet_locked: bool,
    district_id: Option<i64>,
    name: Option<String>,
    address: Option<String>,
    operator: Option<String>,
    level: Option<String>,
    location_description: Option<String>,
}

/// Parses time-zone names with a one-entry cache: rows of one city share their zone, and the
/// cache turns 10^6 hash lookups into string comparisons.
#[derive(Default)]
struct TzCache(Option<(String, Tz)>);

impl TzCache {
    fn get(&mut self, id: i64, name: &str) -> Result<Tz> {
        if let Some((n, tz)) = &self.0 {
            if n == name {
                return Ok(*tz);
            }
        }
        let tz = parse_tz(id, name)?;
        self.0 = Some((name.to_string(), tz));
        Ok(tz)
    }
}

/// Interns opening-hours strings while loading the index.
#[derive(Default)]
struct Interner(HashMap<String, Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(s.to_string(), a.clone());
        a
    }
}

impl AedIndexDbRow {
    fn into_row(self, tzs: &mut TzCache, hours: &mut Interner) -> Result<AedIndexRow> {
        let id = self.id;
        Ok(AedIndexRow {
            id,
            location: LatLon {
                lat: self.lat,
                lon: self.lon,
            },
            access: Access::parse(&self.access)
                .ok_or_else(|| corrupt("access", id, &self.access))?,
            status: ReadinessStatus::parse(&self.status)
                .ok_or_else(|| corrupt("status", id, &self.status))?,
            indoor: self.indoor,
            opening_hours: self.opening_hours.as_deref().map(|h| hours.get(h)),
            time_zone: tzs.get(id, &self.time_zone)?,
            cabinet_locked: self.cabinet_locked,
            district_id: self.district_id,
            name: self.name,
            address: self.address,
            operator: self.operator,
            level: self.level,
            location_description: self.location_description,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Binding helpers: one list of `.bind` calls per entity, in the order of its `*_COLS`.

macro_rules! bind_aed {
    ($q:expr, $d:expr) => {{
        let d: &AedData = $d;
        $q.bind(&d.source)
            .bind(&d.external_ref)
            .bind(d.location.lat)
            .bind(d.location.lon)
            .bind(&d.name)
            .bind(&d.address)
            .bind(&d.operator)
            .bind(&d.phone)
            .bind(d.indoor)
            .bind(&d.level)
            .bind(&d.location_description)
            .bind(d.access.as_str())
            .bind(&d.opening_hours)
            .bind(d.opening_hours_valid)
            .bind(d.time_zone.name())
            .bind(d.cabinet_locked)
            .bind(d.cabinet_code.as_ref().map(|c| c.expose().to_string()))
            .bind(&d.device_model)
            .bind(&d.device_serial)
            .bind(d.pads_expiry)
            .bind(d.battery_expiry)
            .bind(d.readiness.status.as_str())
            .bind(&d.readiness.reason)
            .bind(d.readiness.since)
            .bind(d.district_id)
            .bind(Json(&d.tags))
    }};
}

macro_rules! push_aed {
    ($b:expr, $d:expr, $now:expr) => {{
        let d: &AedData = $d;
        $b.push_bind(d.source.clone())
            .push_bind(d.external_ref.clone())
            .push_bind(d.location.lat)
            .push_bind(d.location.lon)
            .push_bind(d.name.clone())
            .push_bind(d.address.clone())
            .push_bind(d.operator.clone())
            .push_bind(d.phone.clone())
            .push_bind(d.indoor)
            .push_bind(d.level.clone())
            .push_bind(d.location_description.clone())
            .push_bind(d.access.as_str())
            .push_bind(d.opening_hours.clone())
            .push_bind(d.opening_hours_valid)
            .push_bind(d.time_zone.name())
            .push_bind(d.cabinet_locked)
            .push_bind(d.cabinet_code.as_ref().map(|c| c.expose().to_string()))
            .push_bind(d.device_model.clone())
            .push_bind(d.device_serial.clone())
            .push_bind(d.pads_expiry)
            .push_bind(d.battery_expiry)
            .push_bind(d.readiness.status.as_str())
            .push_bind(d.readiness.reason.clone())
            .push_bind(d.readiness.since)
            .push_bind(d.district_id)
            .push_bind(Json(d.tags.clone()))
            .push_bind($now)
            .push_bind($now);
    }};
}

macro_rules! impl_aed_store {
    ($store:ident, $db:ty, $max_params:expr) => {
        impl $store {
            /// The portable index load through sqlx (PostgreSQL, in-memory SQLite).
            async fn load_index_sqlx(&self) -> Result<Vec<AedIndexRow>> {
                use futures_util::TryStreamExt;
                let mut rows = sqlx::query_as::<_, AedIndexDbRow>(INDEX_SQL).fetch(&self.pool);
                let mut out = Vec::new();
                let (mut tzs, mut hours) = (TzCache::default(), Interner::default());
                while let Some(r) = rows.try_next().await.map_err(plain)? {
                    out.push(r.into_row(&mut tzs, &mut hours)?);
                }
                Ok(out)
            }

            /// Existing rows of `table` for a set of (source, external_ref) keys: id and row.
            async fn existing_aeds(&self, keys: &[SourceKey]) -> Result<HashMap<SourceKey, Aed>> {
                let mut found = HashMap::new();
                for chunk in keys.chunks(($max_params / 2).min(500)) {
                    let mut qb = QueryBuilder::<$db>::new("SELECT * FROM aeds WHERE ");
                    for (i, (s, r)) in chunk.iter().enumerate() {
                        if i > 0 {
                            qb.push(" OR ");
                        }
                        qb.push("(source = ").push_bind(s.clone()).push(" AND external_ref = ").push_bind(r.clone()).push(")");
                    }
                    let rows: Vec<AedRow> = qb.build_query_as().fetch_all(&self.pool).await.map_err(plain)?;
                    for row in rows {
                        let aed = row.into_aed()?;
                        if let Some(r) = aed.data.external_ref.clone() {
                            found.insert((aed.data.source.clone(), r), aed);
                        }
                    }
                }
                Ok(found)
            }
        }

        #[async_trait]
        impl AedStore for $store {
            // ---- AEDs

            #[tracing::instrument(skip_all)]
            async fn create_aed(&self, data: &AedData) -> Result<Aed> {
                let now = Utc::now();
                let sql = format!(
                    "INSERT INTO aeds ({AED_COLS}, created_at, updated_at) VALUES ({}) RETURNING *",
                    placeholders(1, AED_NCOLS + 2)
                );
                let row: AedRow = bind_aed!(sqlx::query_as::<_, AedRow>(&sql), data)
                    .bind(now)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await
                    .and_then(crate::sql::first_row)
                    .map_err(|e| db_err(e, Some("district_id")))?;
                row.into_aed()
            }

            async fn get_aed(&self, id: i64) -> Result<Option<Aed>> {
                sqlx::query_as::<_, AedRow>("SELECT * FROM aeds WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(plain)?
                    .map(AedRow::into_aed)
                    .transpose()
            }

            #[tracing::instrument(skip(self, data))]
            async fn replace_aed(&self, id: i64, data: &AedData) -> Result<Option<Aed>> {
                let sql = format!(
                    "UPDATE aeds SET {}, updated_at = ${} WHERE id = ${} RETURNING *",
                    set_list_keeping_readiness(1),
                    AED_NCOLS + 1,
                    AED_NCOLS + 2
                );
                bind_aed!(sqlx::query_as::<_, AedRow>(&sql), data)
                    .bind(Utc::now())
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map(|rows| rows.into_iter().next())
                    .map_err(|e| db_err(e, Some("district_id")))?
                    .map(AedRow::into_aed)
                    .transpose()
            }

            #[tracing::instrument(skip(self))]
            async fn delete_aed(&self, id: i64) -> Result<bool> {
                let r = sqlx::query("DELETE FROM aeds WHERE id = $1").bind(id).execute(&self.pool).await.map_err(plain)?;
                Ok(r.rows_affected() > 0)
            }

            async fn list_aeds(&self, q: &ListQuery) -> Result<Page<Aed>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM aeds");
                push_filters!(qb, q, true);
                if let Some(s) = q.status {
                    qb.push(" AND status = ").push_bind(s.as_str());
                }
                qb.push(" ORDER BY id LIMIT ").push_bind(i64::from(q.limit.clamp(1, 1000)) + 1);
                let rows: Vec<AedRow> = qb.build_query_as().fetch_all(&self.pool).await.map_err(plain)?;
                let items = rows.into_iter().map(AedRow::into_aed).collect::<Result<Vec<_>>>()?;
                Ok(page_of(items, q.limit, |a| a.id))
            }

            async fn count_aeds(&self) -> Result<i64> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM aeds").fetch_one(&self.pool).await.map_err(plain)?;
                Ok(n)
            }

            #[tracing::instrument(skip_all, fields(n = batch.len()))]
            async fn upsert_aeds(&self, batch: &[AedData]) -> Result<Vec<UpsertOutcome>> {
                let keys: Vec<SourceKey> = batch
                    .iter()
                    .filter_map(|d| d.external_ref.clone().map(|r| (d.source.clone(), r)))
                    .collect();
                let mut existing = self.existing_aeds(&keys).await?;
                let now = Utc::now();
                let insert = format!(
                    "INSERT INTO aeds ({AED_COLS}, created_at, updated_at) VALUES ({}) RETURNING *",
                    placeholders(1, AED_NCOLS + 2)
                );
                // Readiness belongs to telemetry and maintenance: an update leaves it alone.
                let update = format!(
                    "UPDATE aeds SET {}, updated_at = ${} WHERE id = ${} RETURNING *",
                    set_list_keeping_readiness(1),
                    AED_NCOLS + 1,
                    AED_NCOLS + 2
                );
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let mut out = Vec::with_capacity(batch.len());
                for d in batch {
                    let key = d.external_ref.clone().map(|r| (d.source.clone(), r));
                    let prior = key.as_ref().and_then(|k| existing.get(k));
                    let (outcome, row) = match prior {
                        Some(old) if old.data.same_source_content(d) => (UpsertOutcome::Unchanged(old.id), None),
                        Some(old) => {
                            let row: AedRow = bind_aed!(sqlx::query_as::<_, AedRow>(&update), d)
                                .bind(now)
                                .bind(old.id)
                                .fetch_one(&mut *tx)
                                .await
                                .map_err(|e| db_err(e, Some("district_id")))?;
                            (UpsertOutcome::Updated(old.id), Some(row))
                        }
                        None => {
                            let row: AedRow = bind_aed!(sqlx::query_as::<_, AedRow>(&insert), d)
                                .bind(now)
                                .bind(now)
                                .fetch_one(&mut *tx)
                                .await
                                .map_err(|e| db_err(e, Some("district_id")))?;
                            (UpsertOutcome::Inserted(row.id), Some(row))
                        }
                    };
                    // A key repeated later in the same batch compares against what we just wrote.
                    if let (Some(k), Some(row)) = (key, row) {
                        existing.insert(k, row.into_aed()?);
                    }
                    out.push(outcome);
                }
                tx.commit().await.map_err(plain)?;
                Ok(out)
            }

            #[tracing::instrument(skip_all, fields(n = batch.len()))]
            async fn insert_aeds_bulk(&self, batch: &[AedData]) -> Result<u64> {
                let now = Utc::now();
                let per_stmt = ($max_params / (AED_NCOLS + 2)).max(1);
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let mut n = 0;
                for chunk in batch.chunks(per_stmt) {
                    let mut qb = QueryBuilder::<$db>::new(format!("INSERT INTO aeds ({AED_COLS}, created_at, updated_at) "));
                    qb.push_values(chunk, |mut b, d| {
                        push_aed!(b, d, now);
                    });
                    n += qb.build().execute(&mut *tx).await.map_err(|e| db_err(e, Some("district_id")))?.rows_affected();
                }
                tx.commit().await.map_err(plain)?;
                Ok(n)
            }

            #[tracing::instrument(skip_all)]
            async fn load_aed_index(&self) -> Result<Vec<AedIndexRow>> {
                self.load_index().await
            }
        }
    };
}

impl PgStore {
    async fn load_index(&self) -> Result<Vec<AedIndexRow>> {
        self.load_index_sqlx().await
    }
}

impl SqliteStore {
    /// Reads the index rows straight through SQLite's C API on a blocking thread. sqlx copies
    /// every value of every row into its own allocation and sends rows one by one across a
    /// channel; for 10^6 rows that doubles start-up time. Reading borrowed values in place on a
    /// read-only connection (WAL lets it run beside writers) is the budgeted path.
    async fn load_index(&self) -> Result<Vec<AedIndexRow>> {
        let Some(path) = self.path.clone() else {
            return self.load_index_sqlx().await;
        };
        tokio::task::spawn_blocking(move || load_index_rusqlite(&path))
            .await
            .map_err(|e| StoreError::Corrupt(format!("index load task failed: {e}")))?
    }
}

fn load_index_rusqlite(path: &std::path::Path) -> Result<Vec<AedIndexRow>> {
    use rusqlite::{Connection, OpenFlags};
    let sqlite_err =
        |e: rusqlite::Error| StoreError::Corrupt(format!("reading the AED index: {e}"));
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err)?;
    let (count,): (i64,) = conn
        .query_row("SELECT COUNT(*) FROM aeds", [], |r| Ok((r.get(0)?,)))
        .map_err(sqlite_err)?;
    let mut stmt = conn.prepare(INDEX_SQL).map_err(sqlite_err)?;
    let mut rows = stmt.query([]).map_err(sqlite_err)?;
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let (mut tzs, mut hours) = (TzCache::default(), Interner::default());
    while let Some(r) = rows.next().map_err(sqlite_err)? {
        let id: i64 = r.get(0).map_err(sqlite_err)?;
        let text = |i: usize| -> Result<&str> {
            r.get_ref(i)
                .map_err(sqlite_err)?
                .as_str()
                .map_err(|e| StoreError::Corrupt(format!("row {id}: {e}")))
        };
        let access = text(3)?;
        let status = text(4)?;
        let opening_hours = match r.get_ref(6).map_err(sqlite_err)? {
            rusqlite::types::ValueRef::Text(t) => Some(
                hours.get(
                    std::str::from_utf8(t)
                        .map_err(|e| StoreError::Corrupt(format!("row {id}: {e}")))?,
                ),
            ),
            _ => None,
        };
        out.push(AedIndexRow {
            id,
            location: LatLon {
                lat: r.get(1).map_err(sqlite_err)?,
                lon: r.get(2).map_err(sqlite_err)?,
            },
            access: Access::parse(access).ok_or_else(|| corrupt("access", id, access))?,
            status: ReadinessStatus::parse(status).ok_or_else(|| corrupt("status", id, status))?,
            indoor: r.get(5).map_err(sqlite_err)?,
            opening_hours,
            time_zone: tzs.get(id, text(7)?)?,
            cabinet_locked: r.get(8).map_err(sqlite_err)?,
            district_id: r.get(9).map_err(sqlite_err)?,
            name: r.get(10).map_err(sqlite_err)?,
            address: r.get(11).map_err(sqlite_err)?,
            operator: r.get(12).map_err(sqlite_err)?,
            level: r.get(13).map_err(sqlite_err)?,
            location_description: r.get(14).map_err(sqlite_err)?,
        });
    }
    Ok(out)
}

// SQLite's limit on bound parameters per statement is 32,766; PostgreSQL's is 65,535.
impl_aed_store!(SqliteStore, sqlx::Sqlite, 32_766usize);
impl_aed_store!(PgStore, sqlx::Postgres, 65_535usize);
