//! The caller's queries: nearest AEDs ranked by fetch round trip, nearest stations.

use aednet_api::extract::Params;
use aednet_api::output::Format;
use aednet_api::{ApiError, ApiResult, AppState};
use aednet_core::station::StationKind;
use aednet_core::LatLon;
use aednet_geoindex::{Filters, HoursPolicy, ReadinessFilter, StationFilters};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Map, Value};

pub const MAX_K: usize = 50;
pub const DEFAULT_K: usize = 5;
/// Beyond 10 km nobody fetches an AED on foot; the cap keeps a bad query cheap.
pub const DEFAULT_MAX_DISTANCE_M: f64 = 10_000.0;
pub const MAX_DISTANCE_M: f64 = 100_000.0;

/// The parameters both queries share.
struct Common {
    at: LatLon,
    k: usize,
    time: DateTime<Utc>,
    max_distance_m: f64,
    format: Format,
}

fn common(
    state: &AppState,
    headers: &HeaderMap,
    p: &Params,
    time_param: &str,
) -> ApiResult<Common> {
    let format = Format::negotiate(headers, p)?;
    let lat = p
        .parse::<f64>("lat", "a number (degrees)")?
        .ok_or_else(|| ApiError::bad_request("lat", "lat is required"))?;
    let lon = p
        .parse::<f64>("lon", "a number (degrees)")?
        .ok_or_else(|| ApiError::bad_request("lon", "lon is required"))?;
    let at = LatLon::named(lat, lon, "lat", "lon")?;
    let k = p
        .parse::<usize>("k", "a whole number")?
        .unwrap_or(DEFAULT_K);
    if !(1..=MAX_K).contains(&k) {
        return Err(ApiError::invalid(
            "k",
            format!("k must be between 1 and {MAX_K}"),
        ));
    }
    let time = match p.get(time_param) {
        None => state.clock.now(),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map_err(|_| {
                ApiError::bad_request(
                    time_param,
                    format!(
                        "{time_param} must be an RFC 3339 time such as 2026-11-24T03:00:00+08:00"
                    ),
                )
            })?
            .with_timezone(&Utc),
    };
    let max_distance_m = p
        .parse::<f64>("max_distance_m", "a number of metres")?
        .unwrap_or(DEFAULT_MAX_DISTANCE_M);
    if !(max_distance_m > 0.0 && max_distance_m <= MAX_DISTANCE_M) {
        return Err(ApiError::invalid(
            "max_distance_m",
            format!("max_distance_m must be above 0 and at most {MAX_DISTANCE_M}"),
        ));
    }
    Ok(Common {
        at,
        k,
        time,
        max_distance_m,
        format,
    })
}

fn list<'a>(p: &'a Params, name: &str) -> impl Iterator<Item = &'a str> {
    p.get(name)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Answers may change minute to minute (hours, readiness): let clients cache briefly.
fn respond(body: Value, format: Format) -> Response {
    let mut resp = match format {
        Format::Json => Json(body).into_response(),
        Format::GeoJson => {
            let mut r = Json(body).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/geo+json"),
            );
            r
        }
    };
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=10"),
    );
    resp
}

#[derive(Serialize)]
struct AedQueryEcho<'a> {
    lat: f64,
    lon: f64,
    k: usize,
    open_at: DateTime<Utc>,
    max_distance_m: f64,
    readiness: ReadinessFilter,
    hours: HoursPolicy,
    include_restricted: bool,
    indoor: Option<bool>,
    walk: &'a aednet_geoindex::WalkModel,
}

#[derive(Serialize)]
struct AedsBody<'a> {
    query: AedQueryEcho<'a>,
    /// `network` when walks were measured on the walking network, else `straight_line`.
    walk: aednet_geoindex::WalkKind,
    /// Why the straight-line model: `no_network` (none loaded) or `off_network` (the point is
    /// farther than `[walk] max_snap_m` from any walkable way).
    #[serde(skip_serializing_if = "Option::is_none")]
    walk_note: Option<&'static str>,
    count: usize,
    results: &'a [aednet_geoindex::Nearest],
}

fn respond_typed<T: Serialize>(body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut r = bytes.into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=10"),
            );
            r
        }
        Err(e) => ApiError::Internal(format!("serializing an answer: {e}")).into_response(),
    }
}

fn feature(lat: f64, lon: f64, mut props: Map<String, Value>) -> Value {
    props.remove("lat");
    props.remove("lon");
    json!({
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": props,
    })
}

#[utoipa::path(get, path = "/api/v1/aeds/nearest", tag = "callers",
    params(
        ("lat" = f64, Query, description = "patient's latitude (WGS 84)"),
        ("lon" = f64, Query, description = "patient's longitude (WGS 84)"),
        ("k" = Option<usize>, Query, description = "1..=50, default 5"),
        ("open_at" = Option<String>, Query, description = "RFC 3339 time; default now"),
        ("max_distance_m" = Option<f64>, Query, description = "straight-line cap, default 10000, at most 100000"),
        ("readiness" = Option<String>, Query, description = "not_known_bad (default: ready, degraded or no telemetry), ready_or_degraded, ready, any"),
        ("hours" = Option<String>, Query, description = "open_or_unknown (default), open (recorded hours only), any"),
        ("include" = Option<String>, Query, description = "comma list: restricted (access=customers/private), closed (same as hours=any), route (each walk as a GeoJSON LineString, caller → AED; back is the same way)"),
        ("indoor" = Option<bool>, Query, description = "only indoor (true) or outdoor (false) AEDs"),
        ("format" = Option<String>, Query, description = "json (default) or geojson"),
    ),
    responses(
        (status = 200, description = "AEDs ranked by round trip (caller → AED → patient), soonest first; walks on the walking network when one is loaded (`walk`: network or straight_line, per answer and per AED)"),
        (status = 400, body = aednet_api::error::ErrorBody), (status = 422, body = aednet_api::error::ErrorBody),
        (status = 429, body = aednet_api::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn nearest_aeds(
    State(state): State<AppState>,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Response> {
    let c = common(&state, &headers, &p, "open_at")?;
    let mut f = Filters::caller_defaults(c.time);
    f.max_distance_m = Some(c.max_distance_m);
    if let Some(r) = p.get("readiness") {
        f.readiness = ReadinessFilter::parse(r).ok_or_else(|| {
            ApiError::bad_request(
                "readiness",
                "readiness must be not_known_bad, ready_or_degraded, ready or any",
            )
        })?;
    }
    if let Some(h) = p.get("hours") {
        f.hours = match h {
            "open_or_unknown" => HoursPolicy::OpenOrUnknown,
            "open" => HoursPolicy::OpenOnly,
            "any" => HoursPolicy::Any,
            _ => {
                return Err(ApiError::bad_request(
                    "hours",
                    "hours must be open_or_unknown, open or any",
                ))
            }
        };
    }
    let mut routes = false;
    for inc in list(&p, "include") {
        match inc {
            "restricted" => f.include_restricted = true,
            "closed" => f.hours = HoursPolicy::Any,
            "route" => routes = true,
            other => {
                return Err(ApiError::bad_request(
                    "include",
                    format!("unknown include '{other}': use restricted, closed, route"),
                ))
            }
        }
    }
    f.indoor = p.parse::<bool>("indoor", "true or false")?;

    let graph = state.walk_graph.get();
    let answer = state.geo.nearest_aeds_walking(
        c.at,
        c.k,
        &f,
        &state.walk,
        graph.as_deref().map(|g| &*g.value),
        routes,
    );
    let results = answer.results;
    let query = AedQueryEcho {
        lat: c.at.lat,
        lon: c.at.lon,
        k: c.k,
        open_at: c.time,
        max_distance_m: c.max_distance_m,
        readiness: f.readiness,
        hours: f.hours,
        include_restricted: f.include_restricted,
        indoor: f.indoor,
        walk: &state.walk,
    };
    // The hot path serializes typed structs straight to bytes (no intermediate JSON tree).
    if c.format == Format::Json {
        let body = AedsBody {
            query,
            walk: answer.walk.kind(),
            walk_note: answer.walk.note(),
            count: results.len(),
            results: &results,
        };
        return Ok(respond_typed(&body));
    }
    let query = serde_json::to_value(&query).unwrap_or_default();
    let features: Vec<Value> = results
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut props = match serde_json::to_value(n) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            props.insert("rank".into(), json!(i + 1));
            feature(n.lat, n.lon, props)
        })
        .collect();
    let body = json!({"type": "FeatureCollection", "query": query, "walk": answer.walk.kind(),
        "walk_note": answer.walk.note(), "features": features});
    Ok(respond(body, c.format))
}

#[utoipa::path(get, path = "/api/v1/stations/nearest", tag = "callers",
    params(
        ("lat" = f64, Query), ("lon" = f64, Query),
        ("k" = Option<usize>, Query, description = "1..=50, default 5"),
        ("kind" = Option<String>, Query, description = "comma list of station kinds (scenic_aid_station, boai_station, school_station, community_station, bus_kit, first_aid_post)"),
        ("staffed" = Option<bool>, Query, description = "only stations staffed at `at` (unknown hours excluded)"),
        ("at" = Option<String>, Query, description = "RFC 3339 time; default now"),
        ("max_distance_m" = Option<f64>, Query, description = "default 10000, at most 100000"),
        ("format" = Option<String>, Query, description = "json (default) or geojson"),
    ),
    responses((status = 200, description = "Stations nearest first"),
        (status = 400, body = aednet_api::error::ErrorBody), (status = 422, body = aednet_api::error::ErrorBody),
        (status = 429, body = aednet_api::error::ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn nearest_stations(
    State(state): State<AppState>,
    headers: HeaderMap,
    p: Params,
) -> ApiResult<Response> {
    let c = common(&state, &headers, &p, "at")?;
    let mut kinds = Vec::new();
    for k in list(&p, "kind") {
        kinds.push(
            StationKind::parse(k).ok_or_else(|| {
                ApiError::bad_request("kind", format!("unknown station kind '{k}'"))
            })?,
        );
    }
    let f = StationFilters {
        kinds,
        at: c.time,
        staffed_only: p
            .parse::<bool>("staffed", "true or false")?
            .unwrap_or(false),
        include_unknown: false,
        max_distance_m: Some(c.max_distance_m),
    };
    let results = state.geo.nearest_stations(c.at, c.k, &f, &state.walk);
    let query = json!({"lat": c.at.lat, "lon": c.at.lon, "k": c.k, "at": c.time,
        "max_distance_m": c.max_distance_m, "staffed": f.staffed_only});
    let body = match c.format {
        Format::Json => json!({"query": query, "count": results.len(), "results": results}),
        Format::GeoJson => {
            let features: Vec<Value> = results
                .iter()
                .map(|n| {
                    let mut props = match serde_json::to_value(&n.station) {
                        Ok(Value::Object(m)) => m,
                        _ => Map::new(),
                    };
                    props.remove("location");
                    for (k, v) in [
                        ("distance_m", json!(n.distance_m)),
                        ("bearing_deg", json!(n.bearing_deg)),
                        ("walk_s", json!(n.walk_s)),
                        ("staffed", json!(n.staffed)),
                        ("next_change", json!(n.next_change)),
                    ] {
                        props.insert(k.into(), v);
                    }
                    let pos = n.station.data.location;
                    feature(pos.lat, pos.lon, props)
                })
                .collect();
            json!({"type": "FeatureCollection", "query": query, "features": features})
        }
    };
    Ok(respond(body, c.format))
}
