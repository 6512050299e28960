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
use axum::response::IntoResponse;
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

/// The WebSocket subprotocol the consoles speak. Browsers cannot set an `Authorization` header
/// on a WebSocket, so a console offers two subprotocols, `aednet.v1` and `bearer.<token>`
/// (token characters are valid protocol tokens); [`ws_bearer`] turns the second into the
/// header the handlers read and answers with `aednet.v1`, so the token is never echoed. A query
/// token would end up in proxy and access logs; the handshake header does not.
pub const WS_PROTOCOL: &str = "aednet.v1";
/// Prefix of the subprotocol that carries the bearer token.
pub const WS_BEARER_PREFIX: &str = "bearer.";

/// Middleware for WebSocket upgrades: a `bearer.<token>` subprotocol becomes
/// `Authorization: Bearer <token>` (an explicit header wins), and a successful upgrade that
/// offered `aednet.v1` selects it. Other requests pass untouched.
pub async fn ws_bearer(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL, UPGRADE};
    let is_upgrade = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let offered: Vec<String> = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if !is_upgrade || offered.is_empty() {
        return next.run(req).await;
    }
    let bearer = offered
        .iter()
        .find_map(|p| p.strip_prefix(WS_BEARER_PREFIX))
        .filter(|s| !s.is_empty());
    if let Some(secret) = bearer {
        if !req.headers().contains_key(AUTHORIZATION) {
            match HeaderValue::from_str(&format!("Bearer {secret}")) {
                Ok(mut v) => {
                    v.set_sensitive(true);
                    req.headers_mut().insert(AUTHORIZATION, v);
                }
                Err(_) => return ApiError::Unauthorized.into_response(),
            }
        }
    }
    let wants_ours = offered.iter().any(|p| p == WS_PROTOCOL);
    let mut res = next.run(req).await;
    if wants_ours
        && res.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS
        && !res.headers().contains_key(SEC_WEBSOCKET_PROTOCOL)
    {
        res.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(WS_PROTOCOL),
        );
    }
    res
}
