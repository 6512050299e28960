//! [`RescuerStore`] for both backends.

use aednet_core::rescuer::{CertLevel, Rescuer, RescuerData};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::types::Json;
use sqlx::QueryBuilder;

use super::{corrupt, db_err, page_of, placeholders, plain, set_list, PgStore, SqliteStore};
use crate::rescuers::RescuerStore;
use crate::{ListQuery, Page, Result};

const RESCUER_COLS: &str =
    "name, phone, certificate_no, level, cert_issued, cert_expires, team, skills, \
    on_duty, location_consent, district_id";
const RESCUER_NCOLS: usize = 11;

#[derive(sqlx::FromRow)]
struct RescuerRow {
    id: i64,
    name: String,
    phone: Option<String>,
    certificate_no: String,
    level: String,
    cert_issued: NaiveDate,
    cert_expires: NaiveDate,
    team: Option<String>,
    skills: Json<Vec<String>>,
    on_duty: bool,
    location_consent: bool,
    district_id: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl RescuerRow {
    fn into_rescuer(self) -> Result<Rescuer> {
        let id = self.id;
        Ok(Rescuer {
            id,
            data: RescuerData {
                name: self.name,
                phone: self.phone,
                certificate_no: self.certificate_no,
                level: CertLevel::parse(&self.level)
                    .ok_or_else(|| corrupt("level", id, &self.level))?,
                cert_issued: self.cert_issued,
                cert_expires: self.cert_expires,
                team: self.team,
                skills: self.skills.0,
                on_duty: self.on_duty,
                location_consent: self.location_consent,
                district_id: self.district_id,
            },
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

macro_rules! bind_rescuer {
    ($q:expr, $d:expr) => {{
        let d: &RescuerData = $d;
        $q.bind(&d.name)
            .bind(&d.phone)
            .bind(&d.certificate_no)
            .bind(d.level.as_str())
            .bind(d.cert_issued)
            .bind(d.cert_expires)
            .bind(&d.team)
            .bind(Json(&d.skills))
            .bind(d.on_duty)
            .bind(d.location_consent)
            .bind(d.district_id)
    }};
}

macro_rules! impl_rescuer_store {
    ($store:ident, $db:ty, $max_params:expr) => {
        #[async_trait]
        impl RescuerStore for $store {
            #[tracing::instrument(skip_all)]
            async fn create_rescuer(&self, data: &RescuerData) -> Result<Rescuer> {
                let now = Utc::now();
                let sql = format!(
                    "INSERT INTO rescuers ({RESCUER_COLS}, created_at, updated_at) VALUES ({}) RETURNING *",
                    placeholders(1, RESCUER_NCOLS + 2)
                );
                let row: RescuerRow = bind_rescuer!(sqlx::query_as::<_, RescuerRow>(&sql), data)
                    .bind(now)
                    .bind(now)
                    .fetch_all(&self.pool)
                    .await
                    .and_then(crate::sql::first_row)
                    .map_err(|e| db_err(e, Some("district_id")))?;
                row.into_rescuer()
            }

            async fn get_rescuer(&self, id: i64) -> Result<Option<Rescuer>> {
                sqlx::query_as::<_, RescuerRow>("SELECT * FROM rescuers WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(plain)?
                    .map(RescuerRow::into_rescuer)
                    .transpose()
            }

            #[tracing::instrument(skip(self, data))]
            async fn replace_rescuer(&self, id: i64, data: &RescuerData) -> Result<Option<Rescuer>> {
                let sql = format!(
                    "UPDATE rescuers SET {}, updated_at = ${} WHERE id = ${} RETURNING *",
                    set_list(RESCUER_COLS, 1),
                    RESCUER_NCOLS + 1,
                    RESCUER_NCOLS + 2
                );
                bind_rescuer!(sqlx::query_as::<_, RescuerRow>(&sql), data)
                    .bind(Utc::now())
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map(|rows| rows.into_iter().next())
                    .map_err(|e| db_err(e, Some("district_id")))?
                    .map(RescuerRow::into_rescuer)
                    .transpose()
            }

            #[tracing::instrument(skip(self))]
            /// With the rescuer go their push subscriptions (cascade), their delivery records
            /// and their history links; recorded positions are erased by the dispatch engine.
            async fn delete_rescuer(&self, id: i64) -> Result<bool> {
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let r = sqlx::query("DELETE FROM rescuers WHERE id = $1").bind(id).execute(&mut *tx).await.map_err(plain)?;
                for table in ["deliveries", "rescuer_incidents"] {
                    sqlx::query(&format!("DELETE FROM {table} WHERE rescuer_id = $1"))
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(plain)?;
                }
                tx.commit().await.map_err(plain)?;
                Ok(r.rows_affected() > 0)
            }

            async fn list_rescuers(&self, q: &ListQuery) -> Result<Page<Rescuer>> {
                let mut qb = QueryBuilder::<$db>::new("SELECT * FROM rescuers");
                let q2 = ListQuery { source: None, ..q.clone() };
                push_filters!(qb, &q2, false);
                qb.push(" ORDER BY id LIMIT ").push_bind(i64::from(q.limit.clamp(1, 1000)) + 1);
                let rows: Vec<RescuerRow> = qb.build_query_as().fetch_all(&self.pool).await.map_err(plain)?;
                let items = rows.into_iter().map(RescuerRow::into_rescuer).collect::<Result<Vec<_>>>()?;
                Ok(page_of(items, q.limit, |r| r.id))
            }

            #[tracing::instrument(skip_all, fields(n = batch.len()))]
            async fn insert_rescuers_bulk(&self, batch: &[RescuerData]) -> Result<u64> {
                let now = Utc::now();
                let per_stmt = ($max_params / (RESCUER_NCOLS + 2)).max(1);
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let mut n = 0;
                for chunk in batch.chunks(per_stmt) {
                    let mut qb =
                        QueryBuilder::<$db>::new(format!("INSERT INTO rescuers ({RESCUER_COLS}, created_at, updated_at) "));
                    qb.push_values(chunk, |mut b, d| {
                        b.push_bind(d.name.clone())
                            .push_bind(d.phone.clone())
                            .push_bind(d.certificate_no.clone())
                            .push_bind(d.level.as_str())
                            .push_bind(d.cert_issued)
                            .push_bind(d.cert_expires)
                            .push_bind(d.team.clone())
                            .push_bind(Json(d.skills.clone()))
                            .push_bind(d.on_duty)
                            .push_bind(d.location_consent)
                            .push_bind(d.district_id)
                            .push_bind(now)
                            .push_bind(now);
                    });
                    n += qb.build().execute(&mut *tx).await.map_err(|e| db_err(e, Some("district_id")))?.rows_affected();
                }
                tx.commit().await.map_err(plain)?;
                Ok(n)
            }
        }
    };
}

// SQLite's limit on bound parameters per statement is 32,766; PostgreSQL's is 65,535.
impl_rescuer_store!(SqliteStore, sqlx::Sqlite, 32_766usize);
impl_rescuer_store!(PgStore, sqlx::Postgres, 65_535usize);
