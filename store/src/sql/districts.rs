//! [`DistrictStore`] for both backends, and the point-in-polygon assignment of AEDs and
//! stations to districts.

use aednet_core::district::{District, DistrictData};
use aednet_core::geo_util::LatLon;
use aednet_core::Tags;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::QueryBuilder;

use super::{db_err, page_of, placeholders, plain, set_list, PgStore, SqliteStore};
use crate::districts::DistrictStore;
use crate::{ListQuery, Page, Result, UpsertOutcome};

const DISTRICT_COLS: &str =
    "source, external_ref, name, code, admin_level, population, boundary, target_aeds_per_10k, target_rescuers, tags";
const DISTRICT_NCOLS: usize = 10;

#[derive(sqlx::FromRow)]
struct DistrictRow {
    id: i64,
    source: String,
    external_ref: Option<String>,
    name: String,
    code: Option<String>,
    admin_level: Option<i32>,
    population: Option<i64>,
    boundary: Option<Json<geojson::Geometry>>,
    target_aeds_per_10k: Option<f64>,
    target_rescuers: Option<i64>,
    tags: Json<Tags>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl DistrictRow {
    fn into_district(self) -> District {
        let data = DistrictData {
            source: self.source,
            external_ref: self.external_ref,
            name: self.name,
            code: self.code,
            admin_level: self.admin_level,
            population: self.population,
            boundary: self.boundary.map(|b| b.0),
            target_aeds_per_10k: self.target_aeds_per_10k,
            target_rescuers: self.target_rescuers,
            tags: self.tags.0,
        };
        District {
            id: self.id,
            target_aeds: data.target_aeds(),
            data,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

macro_rules! bind_district {
    ($q:expr, $d:expr) => {{
        let d: &DistrictData = $d;
        $q.bind(&d.source)
            .bind(&d.external_ref)
            .bind(&d.name)
            .bind(&d.code)
            .bind(d.admin_level)
            .bind(d.population)
            .bind(d.boundary.as_ref().map(Json))
            .bind(d.target_aeds_per_10k)
            .bind(d.target_rescuers)
            .bind(Json(&d.tags))
    }};
}

macro_rules! impl_district_store {
    ($store:ident, $db:ty, $max_params:expr) => {
        #[async_trait]
        impl DistrictStore for $store {
            #[tracing::instrument(skip_all)]
            async fn create_district(&self, data: &DistrictData) -> Result<District> {
                let now = Utc::now();
                let sql = format!(
                    "INSERT INTO districts ({DISTRICT_COLS}, created_at, updated_at) VALUES ({}) RETURNING *",
                    placeholders(1, DISTRICT_NCOLS + 2)
                );
                let row: DistrictRow = bind_district!(sqlx::query_as::<_, DistrictRow>(&sql), data)
                    .bind(now)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await
                    .and_then(crate::sql::first_row)
                    .map_err(plain)?;
                Ok(row.into_district())
            }

            async fn get_district(&self, id: i64) -> Result<Option<District>> {
                Ok(sqlx::query_as::<_, DistrictRow>("SELECT * FROM districts WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(plain)?
                    .map(DistrictRow::into_district))
            }

            #[tracing::instrument(skip(self, data))]
            async fn replace_district(&self, id: i64, data: &DistrictData) -> Result<Option<District>> {
                let sql = format!(
                    "UPDATE districts SET {}, updated_at = ${} WHERE id = ${} RETURNING *",
                    set_list(DISTRICT_COLS, 1),
                    DISTRICT_NCOLS + 1,
                    DISTRICT_NCOLS + 2
                );
                Ok(bind_district!(sqlx::query_as::<_, DistrictRow>(&sql), data)
                    .bind(Utc::now())
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map(|rows| rows.into_iter().next())
                    .map_err(plain)?
                    .map(DistrictRow::into_district))
            }

            #[tracing::instrument(skip(self))]
            async fn delete_district(&self, id: i64) -> Result<bool> {
                let r = sqlx::query("DELETE FROM districts WHERE id = $1").bind(id).execute(&self.pool).await.map_err(plain)?;
                Ok(r.rows_affected() > 0)
            }

            async fn list_districts(&self, q: &ListQuery) -> Result<Page<District>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM districts");
                push_filters!(qb, &ListQuery { district_id: None, ..q.clone() }, false);
                qb.push(" ORDER BY id LIMIT ").push_bind(i64::from(q.limit.clamp(1, 1000)) + 1);
                let rows: Vec<DistrictRow> = qb.build_query_as().fetch_all(&self.pool).await.map_err(plain)?;
                Ok(page_of(rows.into_iter().map(DistrictRow::into_district).collect(), q.limit, |d| d.id))
            }

            #[tracing::instrument(skip_all, fields(n = batch.len()))]
            async fn upsert_districts(&self, batch: &[DistrictData]) -> Result<Vec<UpsertOutcome>> {
                let now = Utc::now();
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let insert = format!(
                    "INSERT INTO districts ({DISTRICT_COLS}, created_at, updated_at) VALUES ({}) RETURNING id",
                    placeholders(1, DISTRICT_NCOLS + 2)
                );
                let update = format!(
                    "UPDATE districts SET {}, updated_at = ${} WHERE id = ${}",
                    set_list(DISTRICT_COLS, 1),
                    DISTRICT_NCOLS + 1,
                    DISTRICT_NCOLS + 2
                );
                let mut out = Vec::with_capacity(batch.len());
                for d in batch {
                    let prior: Option<DistrictRow> = match &d.external_ref {
                        Some(r) => sqlx::query_as("SELECT * FROM districts WHERE source = $1 AND external_ref = $2")
                            .bind(&d.source)
                            .bind(r)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(plain)?,
                        None => None,
                    };
                    match prior.map(DistrictRow::into_district) {
                        Some(old) if old.data == *d => out.push(UpsertOutcome::Unchanged(old.id)),
                        Some(old) => {
                            bind_district!(sqlx::query(&update), d)
                                .bind(now)
                                .bind(old.id)
                                .execute(&mut *tx)
                                .await
                                .map_err(plain)?;
                            out.push(UpsertOutcome::Updated(old.id));
                        }
                        None => {
                            let (id,): (i64,) = bind_district!(sqlx::query_as::<_, (i64,)>(&insert), d)
                                .bind(now)
                                .bind(now)
                                .fetch_one(&mut *tx)
                                .await
                                .map_err(plain)?;
                            out.push(UpsertOutcome::Inserted(id));
                        }
                    }
                }
                tx.commit().await.map_err(plain)?;
                Ok(out)
            }

            #[tracing::instrument(skip_all)]
            async fn assign_districts(&self, locate: &(dyn Fn(LatLon) -> Option<i64> + Sync)) -> Result<u64> {
                let mut changed = 0;
                for table in ["aeds", "stations"] {
                    let rows: Vec<(i64, f64, f64)> =
                        sqlx::query_as(&format!("SELECT id, lat, lon FROM {table} WHERE district_id IS NULL"))
                            .fetch_all(&self.pool)
                            .await
                            .map_err(plain)?;
                    let updates: Vec<(i64, i64)> = rows
                        .into_iter()
                        .filter_map(|(id, lat, lon)| locate(LatLon { lat, lon }).map(|d| (id, d)))
                        .collect();
                    let mut tx = self.pool.begin().await.map_err(plain)?;
                    let sql = format!("UPDATE {table} SET district_id = $1 WHERE id = $2");
                    for (id, d) in &updates {
                        sqlx::query(&sql).bind(*d).bind(*id).execute(&mut *tx).await.map_err(|e| db_err(e, Some("district_id")))?;
                    }
                    tx.commit().await.map_err(plain)?;
                    changed += updates.len() as u64;
                }
                Ok(changed)
            }
        }
    };
}

// SQLite's limit on bound parameters per statement is 32,766; PostgreSQL's is 65,535.
impl_district_store!(SqliteStore, sqlx::Sqlite, 32_766usize);
impl_district_store!(PgStore, sqlx::Postgres, 65_535usize);
