//! [`StationStore`] for both backends.

use std::collections::HashMap;

use aednet_core::geo_util::LatLon;
use aednet_core::station::{ScenicRating, Station, StationData, StationKind};
use aednet_core::Tags;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::QueryBuilder;

use super::{
    corrupt, db_err, page_of, parse_tz, placeholders, plain, set_list, PgStore, SqliteStore,
};
use crate::stations::StationStore;
use crate::{ListQuery, Page, Result, StoreError, UpsertOutcome};

const STATION_COLS: &str = "source, external_ref, kind, name, scenic_rating, lat, lon, location_updated_at, \
    address, staffed_hours, staffed_hours_valid, time_zone, contact_name, contact_phone, equipment, \
    district_id, tags";
const STATION_NCOLS: usize = 17;

#[derive(sqlx::FromRow)]
struct StationRow {
    id: i64,
    source: String,
    external_ref: Option<String>,
    kind: String,
    name: String,
    scenic_rating: Option<String>,
    lat: f64,
    lon: f64,
    location_updated_at: Option<DateTime<Utc>>,
    address: Option<String>,
    staffed_hours: Option<String>,
    staffed_hours_valid: bool,
    time_zone: String,
    contact_name: Option<String>,
    contact_phone: Option<String>,
    equipment: Json<Vec<String>>,
    district_id: Option<i64>,
    tags: Json<Tags>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl StationRow {
    fn into_station(self, aed_ids: Vec<i64>) -> Result<Station> {
        let id = self.id;
        let scenic_rating = match &self.scenic_rating {
            Some(r) => Some(ScenicRating::parse(r).ok_or_else(|| corrupt("scenic rating", id, r))?),
            None => None,
        };
        Ok(Station {
            id,
            data: StationData {
                source: self.source,
                external_ref: self.external_ref,
                kind: StationKind::parse(&self.kind)
                    .ok_or_else(|| corrupt("station kind", id, &self.kind))?,
                name: self.name,
                scenic_rating,
                location: LatLon::new(self.lat, self.lon)
                    .map_err(|e| StoreError::Corrupt(format!("row {id}: {e}")))?,
                location_updated_at: self.location_updated_at,
                address: self.address,
                staffed_hours: self.staffed_hours,
                staffed_hours_valid: self.staffed_hours_valid,
                time_zone: parse_tz(id, &self.time_zone)?,
                contact_name: self.contact_name,
                contact_phone: self.contact_phone,
                equipment: self.equipment.0,
                aed_ids,
                district_id: self.district_id,
                tags: self.tags.0,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

macro_rules! bind_station {
    ($q:expr, $d:expr) => {{
        let d: &StationData = $d;
        $q.bind(&d.source)
            .bind(&d.external_ref)
            .bind(d.kind.as_str())
            .bind(&d.name)
            .bind(d.scenic_rating.map(|r| r.as_str()))
            .bind(d.location.lat)
            .bind(d.location.lon)
            .bind(d.location_updated_at)
            .bind(&d.address)
            .bind(&d.staffed_hours)
            .bind(d.staffed_hours_valid)
            .bind(d.time_zone.name())
            .bind(&d.contact_name)
            .bind(&d.contact_phone)
            .bind(Json(&d.equipment))
            .bind(d.district_id)
            .bind(Json(&d.tags))
    }};
}

macro_rules! impl_station_store {
    ($store:ident, $db:ty, $max_params:expr) => {
        impl $store {
            async fn station_links(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<i64>>> {
                let mut links: HashMap<i64, Vec<i64>> = HashMap::new();
                if ids.is_empty() {
                    return Ok(links);
                }
                let mut qb = QueryBuilder::<$db>::new("SELECT station_id, aed_id FROM station_aeds WHERE station_id IN (");
                let mut sep = qb.separated(", ");
                for id in ids {
                    sep.push_bind(*id);
                }
                qb.push(") ORDER BY station_id, aed_id");
                let rows: Vec<(i64, i64)> = qb.build_query_as().fetch_all(&self.pool).await.map_err(plain)?;
                for (s, a) in rows {
                    links.entry(s).or_default().push(a);
                }
                Ok(links)
            }

            async fn stations_with_links(&self, rows: Vec<StationRow>) -> Result<Vec<Station>> {
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                let mut links = self.station_links(&ids).await?;
                rows.into_iter().map(|r| {
                    let l = links.remove(&r.id).unwrap_or_default();
                    r.into_station(l)
                }).collect()
            }
        }

        #[async_trait]
        impl StationStore for $store {
            #[tracing::instrument(skip_all)]
            async fn create_station(&self, data: &StationData) -> Result<Station> {
                let now = Utc::now();
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let sql = format!(
                    "INSERT INTO stations ({STATION_COLS}, created_at, updated_at) VALUES ({}) RETURNING *",
                    placeholders(1, STATION_NCOLS + 2)
                );
                let row: StationRow = bind_station!(sqlx::query_as::<_, StationRow>(&sql), data)
                    .bind(now)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(|e| db_err(e, Some("district_id")))?;
                for aed in &data.aed_ids {
                    sqlx::query("INSERT INTO station_aeds (station_id, aed_id) VALUES ($1, $2)")
                        .bind(row.id)
                        .bind(*aed)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| db_err(e, Some("aed_ids")))?;
                }
                tx.commit().await.map_err(plain)?;
                row.into_station(data.aed_ids.clone())
            }

            async fn get_station(&self, id: i64) -> Result<Option<Station>> {
                let rows: Vec<StationRow> = sqlx::query_as("SELECT * FROM stations WHERE id = $1")
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(plain)?;
                Ok(self.stations_with_links(rows).await?.pop())
            }

            #[tracing::instrument(skip(self, data))]
            async fn replace_station(&self, id: i64, data: &StationData) -> Result<Option<Station>> {
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let sql = format!(
                    "UPDATE stations SET {}, updated_at = ${} WHERE id = ${} RETURNING *",
                    set_list(STATION_COLS, 1),
                    STATION_NCOLS + 1,
                    STATION_NCOLS + 2
                );
                let Some(row): Option<StationRow> = bind_station!(sqlx::query_as::<_, StationRow>(&sql), data)
                    .bind(Utc::now())
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| db_err(e, Some("district_id")))?
                else {
                    return Ok(None);
                };
                sqlx::query("DELETE FROM station_aeds WHERE station_id = $1").bind(id).execute(&mut *tx).await.map_err(plain)?;
                for aed in &data.aed_ids {
                    sqlx::query("INSERT INTO station_aeds (station_id, aed_id) VALUES ($1, $2)")
                        .bind(id)
                        .bind(*aed)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| db_err(e, Some("aed_ids")))?;
                }
                tx.commit().await.map_err(plain)?;
                row.into_station(data.aed_ids.clone()).map(Some)
            }

            #[tracing::instrument(skip(self))]
            async fn delete_station(&self, id: i64) -> Result<bool> {
                let r = sqlx::query("DELETE FROM stations WHERE id = $1").bind(id).execute(&self.pool).await.map_err(plain)?;
                Ok(r.rows_affected() > 0)
            }

            async fn list_stations(&self, q: &ListQuery) -> Result<Page<Station>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM stations");
                push_filters!(qb, q, true);
                if let Some(k) = q.kind {
                    qb.push(" AND kind = ").push_bind(k.as_str());
                }
                qb.push(" ORDER BY id LIMIT ").push_bind(i64::from(q.limit.clamp(1, 1000)) + 1);
                let rows: Vec<StationRow> = qb.build_query_as().fetch_all(&self.pool).await.map_err(plain)?;
                let items = self.stations_with_links(rows).await?;
                Ok(page_of(items, q.limit, |s| s.id))
            }

            #[tracing::instrument(skip_all, fields(n = batch.len()))]
            async fn upsert_stations(&self, batch: &[StationData]) -> Result<Vec<UpsertOutcome>> {
                let now = Utc::now();
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let mut out = Vec::with_capacity(batch.len());
                let insert = format!(
                    "INSERT INTO stations ({STATION_COLS}, created_at, updated_at) VALUES ({}) RETURNING *",
                    placeholders(1, STATION_NCOLS + 2)
                );
                let update = format!(
                    "UPDATE stations SET {}, updated_at = ${} WHERE id = ${} RETURNING *",
                    set_list(STATION_COLS, 1),
                    STATION_NCOLS + 1,
                    STATION_NCOLS + 2
                );
                for d in batch {
                    let prior: Option<StationRow> = match &d.external_ref {
                        Some(r) => sqlx::query_as("SELECT * FROM stations WHERE source = $1 AND external_ref = $2")
                            .bind(&d.source)
                            .bind(r)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(plain)?,
                        None => None,
                    };
                    let (outcome, id) = match prior {
                        Some(old) => {
                            let id = old.id;
                            let links: Vec<(i64,)> = sqlx::query_as("SELECT aed_id FROM station_aeds WHERE station_id = $1 ORDER BY aed_id")
                                .bind(id)
                                .fetch_all(&mut *tx)
                                .await
                                .map_err(plain)?;
                            let old = old.into_station(links.into_iter().map(|(a,)| a).collect())?;
                            let mut cmp = d.clone();
                            // A mobile kit's position moves; an import does not own it.
                            cmp.location_updated_at = old.data.location_updated_at;
                            if old.data == cmp {
                                out.push(UpsertOutcome::Unchanged(id));
                                continue;
                            }
                            bind_station!(sqlx::query_as::<_, StationRow>(&update), d)
                                .bind(now)
                                .bind(id)
                                .fetch_one(&mut *tx)
                                .await
                                .map_err(|e| db_err(e, Some("district_id")))?;
                            sqlx::query("DELETE FROM station_aeds WHERE station_id = $1").bind(id).execute(&mut *tx).await.map_err(plain)?;
                            (UpsertOutcome::Updated(id), id)
                        }
                        None => {
                            let row: StationRow = bind_station!(sqlx::query_as::<_, StationRow>(&insert), d)
                                .bind(now)
                                .bind(now)
                                .fetch_one(&mut *tx)
                                .await
                                .map_err(|e| db_err(e, Some("district_id")))?;
                            (UpsertOutcome::Inserted(row.id), row.id)
                        }
                    };
                    for aed in &d.aed_ids {
                        sqlx::query("INSERT INTO station_aeds (station_id, aed_id) VALUES ($1, $2)")
                            .bind(id)
                            .bind(*aed)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| db_err(e, Some("aed_ids")))?;
                    }
                    out.push(outcome);
                }
                tx.commit().await.map_err(plain)?;
                Ok(out)
            }
        }
    };
}

// SQLite's limit on bound parameters per statement is 32,766; PostgreSQL's is 65,535.
impl_station_store!(SqliteStore, sqlx::Sqlite, 32_766usize);
impl_station_store!(PgStore, sqlx::Postgres, 65_535usize);
