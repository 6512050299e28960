//! The sqlx implementation of [`Store`], written once and expanded for both backends by the
//! `impl_store!` macro: SQL uses `$n` placeholders, which both sqlx-sqlite and PostgreSQL
//! accept, and the row structs decode from either backend. The backends differ only in their
//! pool type, migrations and the bind-parameter limit that sizes bulk inserts.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use aednet_core::aed::{Access, Aed, AedData, Readiness, ReadinessStatus};
use aednet_core::district::{District, DistrictData};
use aednet_core::geo_util::LatLon;
use aednet_core::rescuer::{CertLevel, Rescuer, RescuerData};
use aednet_core::station::{ScenicRating, Station, StationData, StationKind};
use aednet_core::{Role, Secret, Tags};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use sqlx::error::ErrorKind;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::QueryBuilder;

mod artifacts;

use crate::{
    AedIndexRow, AttentionItem, AttentionQuery, Backend, ConsumableDates, DeviceEventRecord,
    DeviceState, DynStore, ListQuery, NewToken, Page, ReadinessChange, ReadinessOverride, Recorded,
    Result, Store, StoreError, TokenRecord, UpsertOutcome, WorkOrder, WorkOrderNote,
    WorkOrderUpdate,
};

/// Opens the database named by `url` and applies pending migrations.
///
/// `sqlite://path` (created if missing; WAL, `synchronous=NORMAL`, foreign keys on),
/// `sqlite::memory:` (one connection, for tests), or `postgres://…`.
pub async fn connect(url: &str) -> Result<DynStore> {
    if url.starts_with("sqlite:") {
        let memory = url.contains(":memory:");
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|_| StoreError::UnsupportedUrl("malformed sqlite URL".into()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across process crashes (the case that matters for a
            // service); only an OS crash can lose the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(if memory { 1 } else { 8 })
            .connect_with(opts.clone())
            .await
            .map_err(StoreError::Database)?;
        sqlx::migrate!("../migrations/sqlite").run(&pool).await?;
        let path = (!memory).then(|| opts.get_filename().to_path_buf());
        Ok(Arc::new(SqliteStore { pool, path }))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(StoreError::Database)?;
        sqlx::migrate!("../migrations/postgres").run(&pool).await?;
        Ok(Arc::new(PgStore { pool }))
    } else {
        if url.trim().is_empty() {
            return Err(StoreError::UnsupportedUrl(
                "the database URL is empty (set database_url / AEDNET_DATABASE_URL, e.g. sqlite://aednet-data/aednet.db)".into(),
            ));
        }
        let scheme = url.split(':').next().unwrap_or("");
        Err(StoreError::UnsupportedUrl(format!(
            "'{scheme}:' (expected sqlite: or postgres:)"
        )))
    }
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// The database file, for the zero-copy bulk read; `None` for in-memory databases.
    path: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
}

// ---------------------------------------------------------------------------------------------
// Rows and their conversion to domain values (shared by both backends).

const AED_COLS: &str =
    "source, external_ref, lat, lon, name, address, operator, phone, indoor, level, \
    location_description, access, opening_hours, opening_hours_valid, time_zone, cabinet_locked, \
    cabinet_code, device_model, device_serial, pads_expiry, battery_expiry, status, status_reason, \
    status_since, district_id, tags";
/// Number of columns in [`AED_COLS`]; `created_at`/`updated_at` follow them in inserts.
const AED_NCOLS: usize = 26;

const INDEX_SQL: &str = "SELECT id, lat, lon, access, status, indoor, opening_hours, time_zone, cabinet_locked, district_id, \
    name, address, operator, level, location_description FROM aeds ORDER BY id";

const STATION_COLS: &str = "source, external_ref, kind, name, scenic_rating, lat, lon, location_updated_at, \
    address, staffed_hours, staffed_hours_valid, time_zone, contact_name, contact_phone, equipment, \
    district_id, tags";
const STATION_NCOLS: usize = 17;

const RESCUER_COLS: &str =
    "name, phone, certificate_no, level, cert_issued, cert_expires, team, skills, \
    on_duty, location_consent, district_id";
const RESCUER_NCOLS: usize = 11;

const DISTRICT_COLS: &str =
    "source, external_ref, name, code, admin_level, population, boundary, target_aeds_per_10k, target_rescuers, tags";
const DISTRICT_NCOLS: usize = 10;

#[derive(sqlx::FromRow)]
struct AedRow {
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

fn corrupt(what: &str, id: i64, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} '{value}' in row {id}"))
}

fn parse_tz(id: i64, s: &str) -> Result<Tz> {
    s.parse::<Tz>().map_err(|_| corrupt("time zone", id, s))
}

impl AedRow {
    fn into_aed(self) -> Result<Aed> {
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

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    role: String,
    subject_id: Option<i64>,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TokenRow {
    fn into_record(self) -> Result<TokenRecord> {
        Ok(TokenRecord {
            id: self.id,
            role: Role::parse(&self.role).ok_or_else(|| corrupt("role", self.id, &self.role))?,
            name: self.name,
            subject_id: self.subject_id,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Maps constraint violations to [`StoreError::Conflict`] naming the input field. SQLite's
/// foreign-key errors do not say which key failed, so the caller passes the field a foreign-key
/// failure of its statement can only mean.
fn db_err(e: sqlx::Error, fk_field: Option<&str>) -> StoreError {
    let sqlx::Error::Database(d) = &e else {
        return StoreError::Database(e);
    };
    let text = format!("{} {}", d.message(), d.constraint().unwrap_or(""));
    match d.kind() {
        ErrorKind::UniqueViolation => {
            let field = ["certificate_no", "external_ref", "token_hash"]
                .into_iter()
                .find(|f| text.contains(f))
                .map(|f| if f == "token_hash" { "token" } else { f });
            let message = match field {
                Some("certificate_no") => "a rescuer with this certificate number already exists",
                Some("external_ref") => "a record with this source and external_ref already exists",
                _ => "a record with these values already exists",
            };
            StoreError::Conflict {
                field: field.map(str::to_string),
                message: message.into(),
            }
        }
        ErrorKind::ForeignKeyViolation => StoreError::Conflict {
            field: fk_field.map(str::to_string),
            message: "refers to a record that does not exist".into(),
        },
        ErrorKind::CheckViolation | ErrorKind::NotNullViolation => StoreError::Conflict {
            field: None,
            message: "violates a data constraint".into(),
        },
        _ => StoreError::Database(e),
    }
}

pub(crate) fn plain(e: sqlx::Error) -> StoreError {
    db_err(e, None)
}

fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn set_list(cols: &str, from: usize) -> String {
    cols.split(',')
        .enumerate()
        .map(|(i, c)| format!("{} = ${}", c.trim(), from + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Key of a record in its source, for import matching.
type SourceKey = (String, String);

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

/// Appends the list filters and keyset pagination shared by every list query.
macro_rules! push_filters {
    ($qb:expr, $q:expr, $has_location:expr) => {{
        let q: &ListQuery = $q;
        $qb.push(" WHERE 1=1");
        if let Some(after) = q.after_id {
            $qb.push(" AND id > ").push_bind(after);
        }
        if let (Some(b), true) = (q.bbox, $has_location) {
            $qb.push(" AND lat >= ").push_bind(b.min_lat);
            $qb.push(" AND lat <= ").push_bind(b.max_lat);
            $qb.push(" AND lon >= ").push_bind(b.min_lon);
            $qb.push(" AND lon <= ").push_bind(b.max_lon);
        }
        if let Some(d) = q.district_id {
            $qb.push(" AND district_id = ").push_bind(d);
        }
        if let Some(s) = &q.source {
            $qb.push(" AND source = ").push_bind(s.clone());
        }
    }};
}

fn page_of<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> i64) -> Page<T> {
    let limit = limit.clamp(1, 1000) as usize;
    let more = items.len() > limit;
    items.truncate(limit);
    let next_after = if more { items.last().map(&id) } else { None };
    Page { items, next_after }
}

// ---------------------------------------------------------------------------------------------
// The implementation, once, for both backends.

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

macro_rules! impl_store {
    ($store:ident, $db:ty, $backend:expr, $max_params:expr) => {
        impl $store {
            /// Sets an AED's readiness and appends it to its history, in the caller's transaction
            /// (every readiness writer: the API, device events, guardian overrides). `None` when
            /// the AED does not exist; then nothing is written.
            async fn write_readiness(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: i64,
                readiness: &Readiness,
                source: &str,
            ) -> Result<Option<Aed>> {
                let aed = sqlx::query_as::<_, AedRow>(
                    "UPDATE aeds SET status = $1, status_reason = $2, status_since = $3, updated_at = $4 \
                     WHERE id = $5 RETURNING *",
                )
                .bind(readiness.status.as_str())
                .bind(&readiness.reason)
                .bind(readiness.since)
                .bind(Utc::now())
                .bind(id)
                .fetch_optional(&mut **tx)
                .await
                .map_err(plain)?
                .map(AedRow::into_aed)
                .transpose()?;
                if aed.is_some() {
                    sqlx::query("INSERT INTO readiness_history (aed_id, status, reason, since, source) VALUES ($1, $2, $3, $4, $5)")
                        .bind(id)
                        .bind(readiness.status.as_str())
                        .bind(&readiness.reason)
                        .bind(readiness.since)
                        .bind(source)
                        .execute(&mut **tx)
                        .await
                        .map_err(plain)?;
                }
                Ok(aed)
            }

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
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(plain)?;
                Ok(())
            }

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
                    .fetch_one(&self.pool)
                    .await
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
                    set_list(AED_COLS, 1),
                    AED_NCOLS + 1,
                    AED_NCOLS + 2
                );
                bind_aed!(sqlx::query_as::<_, AedRow>(&sql), data)
                    .bind(Utc::now())
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
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

            #[tracing::instrument(skip(self, readiness), fields(status = ?readiness.status))]
            async fn set_aed_readiness(&self, id: i64, readiness: &Readiness, source: &str) -> Result<Option<Aed>> {
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let aed = Self::write_readiness(&mut tx, id, readiness, source).await?;
                tx.commit().await.map_err(plain)?;
                Ok(aed)
            }

            async fn record_device_event(&self, ev: &DeviceEventRecord, readiness: Option<&Readiness>, dates: &ConsumableDates) -> Result<Recorded> {
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let inserted = sqlx::query(
                    "INSERT INTO device_events (aed_id, seq, kind, body, device_ts, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (aed_id, seq) DO NOTHING",
                )
                .bind(ev.aed_id)
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
                if let Some(r) = readiness {
                    // The event row's foreign key has just proved the AED exists.
                    Self::write_readiness(&mut tx, ev.aed_id, r, "device").await?;
                }
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
                Ok(Recorded::New)
            }

            async fn set_readiness_override(
                &self,
                aed_id: i64,
                over: Option<&ReadinessOverride>,
                readiness: &Readiness,
                source: &str,
            ) -> Result<Option<Aed>> {
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let Some(aed) = Self::write_readiness(&mut tx, aed_id, readiness, source).await? else {
                    return Ok(None);
                };
                match over {
                    Some(o) => {
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
                    None => {
                        sqlx::query("DELETE FROM readiness_overrides WHERE aed_id = $1")
                            .bind(aed_id)
                            .execute(&mut *tx)
                            .await
                            .map_err(plain)?;
                    }
                }
                tx.commit().await.map_err(plain)?;
                Ok(Some(aed))
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

            async fn create_incident(&self, state: &str, at: DateTime<Utc>) -> Result<i64> {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO incidents (state, doc, created_at, updated_at) VALUES ($1, '{}', $2, $2) RETURNING id",
                )
                .bind(state)
                .bind(at)
                .fetch_one(&self.pool)
                .await
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
                for (seq, at, entry) in audit {
                    sqlx::query("INSERT INTO incident_audit (incident_id, seq, at, entry) VALUES ($1, $2, $3, $4)")
                        .bind(id)
                        .bind(*seq)
                        .bind(*at)
                        .bind(entry)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| db_err(e, Some("audit")))?;
                }
                tx.commit().await.map_err(plain)?;
                Ok(())
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

            async fn create_work_order(&self, aed_id: i64, title: &str, opened_by: &str, at: DateTime<Utc>) -> Result<WorkOrder> {
                let (id,): (i64,) = sqlx::query_as(
                    "INSERT INTO work_orders (aed_id, title, status, opened_by, opened_at) VALUES ($1, $2, 'open', $3, $4) RETURNING id",
                )
                .bind(aed_id)
                .bind(title)
                .bind(opened_by)
                .bind(at)
                .fetch_one(&self.pool)
                .await
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

            async fn device_states(&self) -> Result<Vec<DeviceState>> {
                sqlx::query_as::<_, DeviceState>("SELECT * FROM device_state ORDER BY aed_id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(plain)
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
                    set_list(AED_COLS, 1),
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
                            let mut d2 = d.clone();
                            d2.readiness = old.data.readiness.clone();
                            let row: AedRow = bind_aed!(sqlx::query_as::<_, AedRow>(&update), &d2)
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

            // ---- Stations

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

            // ---- Rescuers

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
                    .fetch_one(&self.pool)
                    .await
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
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| db_err(e, Some("district_id")))?
                    .map(RescuerRow::into_rescuer)
                    .transpose()
            }

            #[tracing::instrument(skip(self))]
            async fn delete_rescuer(&self, id: i64) -> Result<bool> {
                let r = sqlx::query("DELETE FROM rescuers WHERE id = $1").bind(id).execute(&self.pool).await.map_err(plain)?;
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

            // ---- Districts

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
                    .fetch_one(&self.pool)
                    .await
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
                    .fetch_optional(&self.pool)
                    .await
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

            // ---- Tokens

            #[tracing::instrument(skip_all, fields(role = ?token.role))]
            async fn create_token(&self, token: &NewToken) -> Result<TokenRecord> {
                let row: TokenRow = sqlx::query_as(
                    "INSERT INTO api_tokens (name, role, subject_id, token_hash, created_at) VALUES ($1, $2, $3, $4, $5) \
                     RETURNING id, name, role, subject_id, created_at, revoked_at",
                )
                .bind(&token.name)
                .bind(token.role.as_str())
                .bind(token.subject_id)
                .bind(&token.token_hash)
                .bind(Utc::now())
                .fetch_one(&self.pool)
                .await
                .map_err(plain)?;
                row.into_record()
            }

            async fn find_token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
                sqlx::query_as::<_, TokenRow>(
                    "SELECT id, name, role, subject_id, created_at, revoked_at FROM api_tokens \
                     WHERE token_hash = $1 AND revoked_at IS NULL",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(plain)?
                .map(TokenRow::into_record)
                .transpose()
            }

            #[tracing::instrument(skip(self))]
            async fn revoke_token(&self, id: i64) -> Result<bool> {
                let r = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(Utc::now())
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(plain)?;
                Ok(r.rows_affected() > 0)
            }

            async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
                sqlx::query_as::<_, TokenRow>("SELECT id, name, role, subject_id, created_at, revoked_at FROM api_tokens ORDER BY id")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(plain)?
                    .into_iter()
                    .map(TokenRow::into_record)
                    .collect()
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
impl_store!(SqliteStore, sqlx::Sqlite, Backend::Sqlite, 32_766usize);
impl_store!(PgStore, sqlx::Postgres, Backend::Postgres, 65_535usize);
