//! API tokens: only the SHA-256 of a secret is stored.

use aednet_core::Role;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Result;

/// A bearer token as stored: only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The rescuer or device this token belongs to, for those roles.
    pub subject_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    pub subject_id: Option<i64>,
    /// Lower-case hex SHA-256 of the token secret.
    pub token_hash: String,
}

#[async_trait]
pub trait TokenStore: Send + Sync {
    async fn create_token(&self, token: &NewToken) -> Result<TokenRecord>;
    /// A live (not revoked) token by hash.
    async fn find_token(&self, token_hash: &str) -> Result<Option<TokenRecord>>;
    async fn revoke_token(&self, id: i64) -> Result<bool>;
    /// Gives a live token another role; `None` if there is no live token `id`.
    async fn set_token_role(&self, id: i64, role: Role) -> Result<Option<TokenRecord>>;
    async fn list_tokens(&self) -> Result<Vec<TokenRecord>>;
}
