//! [`ArtifactStore`] for both backends.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{plain, PgStore, SqliteStore};
use crate::artifacts::{Artifact, ArtifactInfo, ArtifactStore};
use crate::Result;

#[derive(sqlx::FromRow)]
struct InfoRow {
    kind: String,
    version: i64,
    built_at: DateTime<Utc>,
    meta: String,
    size_bytes: i64,
}

impl From<InfoRow> for ArtifactInfo {
    fn from(r: InfoRow) -> Self {
        ArtifactInfo {
            kind: r.kind,
            version: r.version,
            built_at: r.built_at,
            meta: r.meta,
            size_bytes: r.size_bytes,
        }
    }
}

const INFO_COLS: &str =
    "kind, version, built_at, meta, CAST(LENGTH(bytes) AS BIGINT) AS size_bytes";

macro_rules! impl_artifacts {
    ($store:ident, $db:ty) => {
        #[async_trait]
        impl ArtifactStore for $store {
            #[tracing::instrument(skip(self, meta, bytes), fields(size = bytes.len()))]
            async fn put_artifact(&self, kind: &str, meta: &str, bytes: &[u8]) -> Result<i64> {
                let mut tx = self.pool.begin().await.map_err(plain)?;
                let version: i64 = sqlx::query_scalar(
                    "INSERT INTO artifacts (kind, version, built_at, meta, bytes) VALUES ($1, 1, $2, $3, $4) \
                     ON CONFLICT (kind) DO UPDATE SET version = artifacts.version + 1, \
                     built_at = excluded.built_at, meta = excluded.meta, bytes = excluded.bytes \
                     RETURNING version",
                )
                .bind(kind)
                .bind(Utc::now())
                .bind(meta)
                .bind(bytes)
                .fetch_one(&mut *tx)
                .await
                .map_err(plain)?;
                tx.commit().await.map_err(plain)?;
                Ok(version)
            }

            #[tracing::instrument(skip(self))]
            async fn get_artifact(&self, kind: &str) -> Result<Option<Artifact>> {
                use sqlx::Row as _;
                let row = sqlx::query(&format!(
                    "SELECT {INFO_COLS}, bytes FROM artifacts WHERE kind = $1"
                ))
                .bind(kind)
                .fetch_optional(&self.pool)
                .await
                .map_err(plain)?;
                let Some(row) = row else { return Ok(None) };
                let bytes: Vec<u8> = row.try_get("bytes").map_err(plain)?;
                let info = <InfoRow as sqlx::FromRow<'_, _>>::from_row(&row).map_err(plain)?;
                Ok(Some(Artifact {
                    info: info.into(),
                    bytes,
                }))
            }

            async fn artifact_versions(&self) -> Result<Vec<ArtifactInfo>> {
                Ok(sqlx::query_as::<_, InfoRow>(&format!(
                    "SELECT {INFO_COLS} FROM artifacts ORDER BY kind"
                ))
                .fetch_all(&self.pool)
                .await
                .map_err(plain)?
                .into_iter()
                .map(Into::into)
                .collect())
            }

            async fn delete_artifact(&self, kind: &str) -> Result<bool> {
                let r = sqlx::query("DELETE FROM artifacts WHERE kind = $1")
                    .bind(kind)
                    .execute(&self.pool)
                    .await
                    .map_err(plain)?;
                Ok(r.rows_affected() > 0)
            }
        }
    };
}

impl_artifacts!(SqliteStore, sqlx::Sqlite);
impl_artifacts!(PgStore, sqlx::Postgres);
