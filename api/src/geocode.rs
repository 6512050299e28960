//! Address and place search for dispatchers: `GET /api/v1/geocode?q=…&near=lat,lon&limit=`
//! over the `geocode` artifact (addresses, POIs, places and streets of the last map import)
//! and the `address_register` artifact (a city's register, `aednet import addresses`), each
//! indexed in memory when it loads ([`crate::artifacts::follow_into`]) and searched side by
//! side. Until an import has stored either, a search answers no results and says so.

use std::sync::Arc;

use aednet_core::{LatLon, Role};
use aednet_geocode::Index;
use aednet_store::artifacts::kind;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::artifacts::ArtifactSlot;
use crate::auth::Caller;
use crate::extract::Params;
use crate::{ApiError, ApiResult, AppState};

pub const DEFAULT_LIMIT: usize = 8;
pub const MAX_LIMIT: usize = 50;
/// Longer than any address a dispatcher types; bounds the work of one query.
pub const MAX_QUERY_CHARS: usize = 200;

/// The indexes a node searches: the map's and the register's.
#[derive(Debug)]
pub struct Geocoder {
    pub map: Arc<ArtifactSlot<Arc<Index>>>,
    pub register: Arc<ArtifactSlot<Arc<Index>>>,
}

impl Default for Geocoder {
    fn default() -> Self {
        Self {
            map: Arc::new(ArtifactSlot::new(kind::GEOCODE)),
            register: Arc::new(ArtifactSlot::new(kind::ADDRESS_REGISTER)),
        }
    }
}

/// One answer of a search.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GeocodeResult {
    pub label: String,
    /// `address`, `poi`, `street` or `place`.
    pub kind: &'static str,
    /// A POI's or place's type (`pharmacy`, `village`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    pub lat: f64,
    pub lon: f64,
    /// 0–1: share of what was typed that the place matches, weighed with distance.
    pub score: f32,
    /// Metres from `near`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance_m: Option<f64>,
    /// `map` (the OSM import or demo city) or `register` (an address register).
    pub source: &'static str,
}

/// Decodes a stored set of places and indexes it (on the background threads).
pub fn decode_index(bytes: &[u8]) -> Result<Arc<Index>, String> {
    aednet_geocode::decode(bytes).map(|p| Arc::new(Index::build(p)))
}

impl Geocoder {
    /// Starts following both artifacts.
    pub fn start(&self, state: &AppState) {
        crate::artifacts::follow_into(state, self.map.clone(), decode_index);
        crate::artifacts::follow_into(state, self.register.clone(), decode_index);
    }

    /// Places indexed on this node now.
    pub fn indexed(&self) -> usize {
        [&self.map, &self.register]
            .iter()
            .filter_map(|s| s.get())
            .map(|l| l.value.len())
            .sum()
    }

    /// The best `limit` answers from both indexes.
    pub fn search(&self, q: &str, near: Option<LatLon>, limit: usize) -> Vec<GeocodeResult> {
        let mut out: Vec<GeocodeResult> = Vec::new();
        for (slot, source) in [(&self.register, "register"), (&self.map, "map")] {
            let Some(loaded) = slot.get() else { continue };
            let ix = &loaded.value;
            for h in ix.search(q, near, limit) {
                let p = &ix.places()[h.place];
                out.push(GeocodeResult {
                    label: p.label.clone(),
                    kind: p.kind.as_str(),
                    category: p.category.clone(),
                    lat: h.pos.lat,
                    lon: h.pos.lon,
                    score: (h.score * 1000.0).round() / 1000.0,
                    distance_m: h.distance_m.map(f64::round),
                    source,
                });
            }
        }
        // The register first among equals: it is the authority on its addresses.
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        // The same address from both sources once.
        let mut seen: Vec<(String, f64, f64)> = Vec::new();
        out.retain(|r| {
            let dup = seen.iter().any(|(l, lat, lon)| {
                *l == r.label && (lat - r.lat).abs() < 0.001 && (lon - r.lon).abs() < 0.001
            });
            if !dup {
                seen.push((r.label.clone(), r.lat, r.lon));
            }
            !dup
        });
        out.truncate(limit);
        out
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/geocode", get(geocode))
}

/// Parses `near=lat,lon`.
pub fn parse_near(s: &str) -> Result<LatLon, ApiError> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [lat, lon] = parts[..] else {
        return Err(ApiError::invalid("near", "expected lat,lon"));
    };
    let (Ok(lat), Ok(lon)) = (lat.parse::<f64>(), lon.parse::<f64>()) else {
        return Err(ApiError::invalid("near", "expected two numbers: lat,lon"));
    };
    Ok(LatLon::named(lat, lon, "near", "near")?)
}

#[utoipa::path(get, path = "/api/v1/geocode", tag = "geocode",
    params(
        ("q" = String, Query, description = "What was typed: an address, a place, a POI; any language, typos welcome"),
        ("near" = Option<String>, Query, description = "lat,lon of the map view: nearer answers rank higher, streets answer at their nearest point"),
        ("limit" = Option<u32>, Query, description = "1..=50, default 8"),
    ),
    security(("bearer" = [])),
    responses((status = 200, description = "{\"results\": [GeocodeResult], \"indexed\": n}"),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn geocode(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    caller.require(&[Role::Dispatcher, Role::Admin])?;
    let q = params
        .get("q")
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .ok_or_else(|| ApiError::invalid("q", "type an address, a place or a POI"))?;
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ApiError::invalid(
            "q",
            format!("at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let near = params.get("near").map(parse_near).transpose()?;
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| ApiError::invalid("limit", format!("1..={MAX_LIMIT}")))?,
    };
    let started = std::time::Instant::now();
    let results = state.geocode.search(q, near, limit);
    tracing::debug!(
        took_us = started.elapsed().as_micros() as u64,
        n = results.len(),
        "geocode"
    );
    Ok(Json(serde_json::json!({
        "results": results,
        "indexed": state.geocode.indexed(),
    }))
    .into_response())
}
