//! Bearer tokens and roles.
//!
//! A token is 256 random bits, shown once at creation (`aednet token create`). Only its
//! SHA-256 is stored. A slow password hash (argon2) would add tens of milliseconds to every
//! request and buys nothing here: brute-forcing a 256-bit random secret from its SHA-256 is
//! infeasible, and the hash doubles as the lookup key, so verification is one indexed query.

use aednet_core::Role;
use aednet_store::{NewToken, TokenRecord};
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// Prefix that makes leaked tokens recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "aed_";

/// Generates a token secret and the record to store for it. The secret is returned only here.
pub fn new_token(name: &str, role: Role, subject_id: Option<i64>) -> (String, NewToken) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let record = NewToken {
        name: name.to_string(),
        role,
        subject_id,
        token_hash: hash_token(&secret),
    };
    (secret, record)
}

pub fn hash_token(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who is calling: `Public` without a token. A token that is present but unknown or revoked is
/// rejected (401) rather than silently downgraded to public.
#[derive(Debug, Clone)]
pub struct Caller {
    pub role: Role,
    pub token: Option<TokenRecord>,
}

impl Caller {
    /// Allows the listed roles; `Public` callers get 401 (they may log in), others 403.
    pub fn require(&self, roles: &[Role]) -> Result<&Self, ApiError> {
        if roles.contains(&self.role) {
            Ok(self)
        } else if self.role == Role::Public {
            Err(ApiError::Unauthorized)
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// For a token bound to one rescuer or device: its id, if the role is `role`.
    pub fn subject(&self, role: Role) -> Result<i64, ApiError> {
        self.require(&[role])?;
        self.token
            .as_ref()
            .and_then(|t| t.subject_id)
            .ok_or(ApiError::Forbidden)
    }

    pub fn is(&self, roles: &[Role]) -> bool {
        roles.contains(&self.role)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(AUTHORIZATION) else {
            return Ok(Caller {
                role: Role::Public,
                token: None,
            });
        };
        let secret = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let hash = hash_token(secret);
        let record = match state.tokens.get(&hash) {
            Some(r) => r,
            None => {
                let r = state
                    .store
                    .find_token(&hash)
                    .await?
                    .ok_or(ApiError::Unauthorized)?;
                state.tokens.put(hash, r.clone());
                r
            }
        };
        Ok(Caller {
            role: record.role,
            token: Some(record),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let (a, ra) = new_token("ops", Role::Admin, None);
        let (b, _) = new_token("ops", Role::Admin, None);
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 43);
        assert_eq!(ra.token_hash, hash_token(&a));
        assert_eq!(ra.token_hash.len(), 64);
        assert!(!ra.token_hash.contains(&a[4..]));
    }
}

/// Recently verified tokens, so an authenticated request does not query the store each time.
/// Entries live `TOKEN_CACHE_TTL`; revoking through this node's API clears the cache at once,
/// and another node's revocation takes effect here within the TTL.
#[derive(Debug, Default)]
pub struct TokenCache {
    map: parking_lot::RwLock<std::collections::HashMap<String, (TokenRecord, std::time::Instant)>>,
}

pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

impl TokenCache {
    fn get(&self, hash: &str) -> Option<TokenRecord> {
        let map = self.map.read();
        let (rec, at) = map.get(hash)?;
        (at.elapsed() < TOKEN_CACHE_TTL).then(|| rec.clone())
    }

    fn put(&self, hash: String, rec: TokenRecord) {
        let mut map = self.map.write();
        // Bounded: drop everything rather than grow without limit under a flood of tokens.
        if map.len() >= 100_000 {
            map.clear();
        }
        map.insert(hash, (rec, std::time::Instant::now()));
    }

    pub fn clear(&self) {
        self.map.write().clear();
    }
}
