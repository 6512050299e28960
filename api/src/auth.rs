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
    /// The revocation epoch of [`crate::sessions::Sessions`] before the token was looked up: a
    /// socket opened on a check that a revocation may have overtaken is closed at once.
    pub(crate) epoch: u64,
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

    /// Checks the `Authorization` header: the token from the cache or the store.
    pub(crate) async fn authenticate(
        headers: &axum::http::HeaderMap,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let epoch = state.sessions.epoch();
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Ok(Caller {
                role: Role::Public,
                token: None,
                epoch,
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
        let record = verify_token(state, secret).await?;
        Ok(Caller {
            role: record.role,
            token: Some(record),
            epoch,
        })
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Already checked by [`authenticate_first`].
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        Caller::authenticate(&parts.headers, state).await
    }
}

/// The live token with this secret, from the cache or the store; 401 when there is none.
pub async fn verify_token(state: &AppState, secret: &str) -> Result<TokenRecord, ApiError> {
    let hash = hash_token(secret);
    match state.tokens.get(&hash) {
        Some(known) => known,
        None => {
            // Taken before the lookup: a revocation that lands while the lookup is in flight
            // changes it, and the (possibly stale) answer is not cached.
            let generation = state.tokens.generation();
            let found = state.store.find_token(&hash).await?;
            state.tokens.put(hash, found.clone(), generation);
            found
        }
    }
    .ok_or(ApiError::Unauthorized)
}

/// `POST` by a CAD system, authenticated by its signature (`aednet_dispatch::cad`).
pub const CAD_INBOUND_PATH: &str = "/api/v1/cad/incidents";

/// Methods that carry a request body. Every route taking one needs a token.
fn has_body(method: &axum::http::Method) -> bool {
    use axum::http::Method;
    [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method)
}

/// Middleware on every route: a request that can carry a body (POST, PUT, PATCH, DELETE) has
/// its token checked before anything reads the body — an unknown token or none at all is 401 at
/// once, whatever the body's size (no route takes a body from the public). The checked
/// [`Caller`] rides along in the request's extensions for the handler.
pub async fn authenticate_first(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if !has_body(req.method()) {
        return next.run(req).await;
    }
    // The CAD's requests carry an HMAC signature instead of a token (its credential is the
    // shared secret, checked by the handler over a body of at most 64 KiB), when the link is on.
    if req.uri().path() == CAD_INBOUND_PATH && state.cad.secret.is_some() {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    match Caller::authenticate(&parts.headers, &state).await {
        Ok(c) if c.role == Role::Public => ApiError::Unauthorized.into_response(),
        Ok(c) => {
            parts.extensions.insert(c);
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Err(e) => e.into_response(),
    }
}

/// Route layer admitting only `roles` to a route that takes a body (401 without a token, 403
/// for another role) before its handler and body extractor run, with the [`Caller`] that
/// [`authenticate_first`] checked: `.route_layer(axum::middleware::from_fn(|r, n|
/// require_roles(ROLES, r, n)))`. Requests without one (methods without a body) pass on to the
/// handler, which checks the role itself.
pub async fn require_roles(
    roles: &'static [Role],
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(caller) = req.extensions().get::<Caller>() {
        if let Err(e) = caller.require(roles) {
            return e.into_response();
        }
    }
    next.run(req).await
}

/// Recently looked-up tokens, so an authenticated request does not query the store each time:
/// live ones for [`TOKEN_CACHE_TTL`], unknown ones (a typo, a revoked token still in use, a
/// scanner guessing) for [`NEGATIVE_CACHE_TTL`]. A revocation (on this node, or heard from
/// another) clears it and bumps its generation; an answer looked up under an older generation
/// is not cached, so a lookup in flight during a revocation cannot put the token back.
#[derive(Debug, Default)]
pub struct TokenCache {
    map: parking_lot::RwLock<CacheMap>,
    generation: std::sync::atomic::AtomicU64,
}

type CacheMap = std::collections::HashMap<String, (Option<TokenRecord>, std::time::Instant)>;

pub const TOKEN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(10);
pub const NEGATIVE_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

impl TokenCache {
    /// `Some(None)`: known not to be a live token.
    pub fn get(&self, hash: &str) -> Option<Option<TokenRecord>> {
        let map = self.map.read();
        let (rec, at) = map.get(hash)?;
        let ttl = if rec.is_some() {
            TOKEN_CACHE_TTL
        } else {
            NEGATIVE_CACHE_TTL
        };
        (at.elapsed() < ttl).then(|| rec.clone())
    }

    /// Read before a store lookup and handed to [`TokenCache::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Caches a lookup's answer unless the cache was cleared since `generation` was read.
    pub fn put(&self, hash: String, rec: Option<TokenRecord>, generation: u64) {
        let mut map = self.map.write();
        // Compared under the write lock, which `clear` also holds while bumping it.
        if self.generation() != generation {
            return;
        }
        // Bounded: drop everything rather than grow without limit under a flood of tokens.
        if map.len() >= 100_000 {
            map.clear();
        }
        map.insert(hash, (rec, std::time::Instant::now()));
    }

    pub fn clear(&self) {
        let mut map = self.map.write();
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        map.clear();
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
