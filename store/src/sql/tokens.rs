//! [`TokenStore`] for both backends.

use aednet_core::Role;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{corrupt, plain, PgStore, SqliteStore};
use crate::tokens::{NewToken, TokenRecord, TokenStore};
use crate::Result;

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

macro_rules! impl_token_store {
    ($store:ident, $db:ty, $max_params:expr) => {
        #[async_trait]
        impl TokenStore for $store {
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
                .fetch_all(&self.pool)
                .await
                .and_then(crate::sql::first_row)
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

            #[tracing::instrument(skip(self))]
            async fn set_token_role(&self, id: i64, role: Role) -> Result<Option<TokenRecord>> {
                sqlx::query_as::<_, TokenRow>(
                    "UPDATE api_tokens SET role = $1 WHERE id = $2 AND revoked_at IS NULL \
                     RETURNING id, name, role, subject_id, created_at, revoked_at",
                )
                .bind(role.as_str())
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map(|rows| rows.into_iter().next())
                .map_err(plain)?
                .map(TokenRow::into_record)
                .transpose()
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

// SQLite's limit on bound parameters per statement is 32,766; PostgreSQL's is 65,535.
impl_token_store!(SqliteStore, sqlx::Sqlite, 32_766usize);
impl_token_store!(PgStore, sqlx::Postgres, 65_535usize);
