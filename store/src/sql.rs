//! The sqlx implementation of [`Store`]: connecting, the two backends' types, and what every
//! concern shares (error mapping, placeholders, paging). Each concern's trait is implemented in
//! its own module, written once and expanded for both backends by a macro: SQL uses `$n`
//! placeholders, which both sqlx-sqlite and PostgreSQL accept, and the row structs decode from
//! either backend. The backends differ only in their pool type, migrations and the
//! bind-parameter limit that sizes bulk inserts.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono_tz::Tz;
use sqlx::error::ErrorKind;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{Backend, DynStore, Page, Result, Store, StoreError};

/// Appends the list filters and keyset pagination shared by every list query (defined before
/// the modules so they can use it).
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

mod aeds;
mod artifacts;
mod districts;
mod incidents;
mod notify;
mod readiness;
mod rescuers;
mod stations;
mod tokens;
mod work_orders;

/// The first row of a write's `RETURNING` rows, which the caller read to the end.
///
/// Writes with `RETURNING` outside a transaction are read with `fetch_all`, never
/// `fetch_one`/`fetch_optional`: SQLite commits such a statement when it finishes, and taking
/// the first row and dropping the statement hides a failed commit — on a full disk every
/// `POST /aeds` answered 201 with a row that was never stored (the fault suite found it).
pub(crate) fn first_row<T>(rows: Vec<T>) -> std::result::Result<T, sqlx::Error> {
    rows.into_iter().next().ok_or(sqlx::Error::RowNotFound)
}

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
        let mut pool = SqlitePoolOptions::new().max_connections(if memory { 1 } else { 8 });
        if memory {
            // The database lives in its one connection: the pool must never retire it (sqlx
            // closes connections after 30 min of life or 10 min idle by default, and a long
            // `simulate` run then found "no such table" on a fresh, empty database).
            pool = pool
                .min_connections(1)
                .max_lifetime(None)
                .idle_timeout(None);
        }
        let pool = pool
            // A write that failed mid-transaction (a full disk: SQLite may roll back by itself,
            // and the ROLLBACK that follows then fails) can leave a connection its driver
            // believes inside a transaction; reused, its next transaction would only open a
            // savepoint, and a transaction SQLite still holds keeps the write lock, so every
            // other writer times out. Such a connection is closed instead of reused.
            .after_release(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection;
                    if conn.is_in_transaction() {
                        tracing::warn!("closing a database connection left inside a transaction");
                        return Ok(false);
                    }
                    Ok(true)
                })
            })
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
// Shared by the concerns' implementations.

fn corrupt(what: &str, id: i64, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what} '{value}' in row {id}"))
}

fn parse_tz(id: i64, s: &str) -> Result<Tz> {
    s.parse::<Tz>().map_err(|_| corrupt("time zone", id, s))
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

fn page_of<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> i64) -> Page<T> {
    let limit = limit.clamp(1, 1000) as usize;
    let more = items.len() > limit;
    items.truncate(limit);
    let next_after = if more { items.last().map(&id) } else { None };
    Page { items, next_after }
}

macro_rules! impl_store {
    ($store:ident, $backend:expr) => {
        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map_err(plain)?;
                Ok(())
            }
        }
    };
}

impl_store!(SqliteStore, Backend::Sqlite);
impl_store!(PgStore, Backend::Postgres);
