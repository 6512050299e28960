//! The public map queries: `GET /api/v1/coverage` (GeoJSON hexagons) and
//! `GET /api/v1/coverage/weekly`, and the query parameters they share.

use std::sync::Arc;

use aednet_coverage::{Mode, Params};
use aednet_geoindex::{HoursPolicy, ReadinessFilter};
use axum::extract::Extension;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::cache::Answer;
use super::live::{summary_json, Coverage};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Params as QueryParams;

/// What a coverage request asks for.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MapRequest {
    pub(super) res: u8,
    pub(super) params: Params,
    pub(super) at: Option<DateTime<Utc>>,
    /// The one district asked about: a grid at another resolution is built over it alone.
    pub(super) district: Option<i64>,
}

async fn map_request(cov: &Coverage, q: &QueryParams) -> ApiResult<MapRequest> {
    let district = match q.parse::<i64>("district_id", "an integer district id")? {
        Some(d) => Some(d),
        None => q.parse::<i64>("district", "an integer district id")?,
    };
    if let Some(d) = district {
        if !cov.district_known(d).await {
            return Err(ApiError::invalid("district_id", format!("no district {d}")));
        }
    }
    let res = q.parse::<u8>("res", "9 or 10")?.unwrap_or(cov.config.res);
    if !(res == cov.config.res || res == 9 || res == 10) {
        return Err(ApiError::invalid("res", "res must be 9 or 10"));
    }
    let at = q
        .get("at")
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| ApiError::bad_request("at", "at must be an RFC 3339 date-time"))
        })
        .transpose()?;
    let mut params = cov.params;
    if let Some(m) = q.get("mode") {
        params.mode = Mode::parse(m).ok_or_else(|| {
            ApiError::invalid("mode", "mode must be round_trip, one_way or radius")
        })?;
    }
    if let Some(b) = q.parse::<f64>("budget_s", "a number of seconds")? {
        params.budget_s = b;
    }
    if let Some(r) = q.parse::<f64>("radius_m", "a number of metres")? {
        params.radius_m = r;
    }
    if let Some(r) = q.get("readiness") {
        params.readiness = ReadinessFilter::parse(r).ok_or_else(|| {
            ApiError::invalid(
                "readiness",
                "readiness must be not_known_bad, ready_or_degraded, ready or any",
            )
        })?;
    }
    if let Some(h) = q.get("hours") {
        params.hours = match h {
            "open_or_unknown" => HoursPolicy::OpenOrUnknown,
            "open" => HoursPolicy::OpenOnly,
            "any" => HoursPolicy::Any,
            _ => {
                return Err(ApiError::invalid(
                    "hours",
                    "hours must be open_or_unknown, open or any",
                ))
            }
        };
    }
    if let Some(w) = q.get("walk") {
        params.walk_on = match w {
            "network" => aednet_geoindex::WalkKind::Network,
            "straight_line" => aednet_geoindex::WalkKind::StraightLine,
            _ => {
                return Err(ApiError::invalid(
                    "walk",
                    "walk must be network or straight_line",
                ))
            }
        };
    }
    params
        .validate()
        .map_err(|(f, m)| ApiError::invalid(f, m))?;
    Ok(MapRequest {
        res,
        params,
        at,
        district,
    })
}

/// `GET /api/v1/coverage`: the cells as GeoJSON hexagons.
#[utoipa::path(get, path = "/api/v1/coverage", tag = "coverage",
    params(("district_id" = Option<i64>, Query), ("res" = Option<u8>, Query, description = "H3 resolution, 9 (default) or 10"),
        ("at" = Option<String>, Query, description = "RFC 3339; default now (the live map)"),
        ("mode" = Option<String>, Query, description = "round_trip (default), one_way, radius"),
        ("budget_s" = Option<f64>, Query), ("radius_m" = Option<f64>, Query),
        ("readiness" = Option<String>, Query, description = "not_known_bad (default), ready_or_degraded, ready, any"),
        ("hours" = Option<String>, Query, description = "open_or_unknown (default), open, any"),
        ("walk" = Option<String>, Query, description = "network (default: on the walking network when one is loaded; the summary's `walk` says which was used) or straight_line"),
        ("bbox" = Option<String>, Query, description = "min_lon,min_lat,max_lon,max_lat: only cells whose centre is inside (the summary stays the district's or the whole map's)")),
    responses((status = 200, description = "GeoJSON FeatureCollection of hexagons with properties cell, time_s, covered, population, aed_id; top-level summary"),
        (status = 400, body = ErrorBody), (status = 422, body = ErrorBody, description = "an invalid parameter, or more than `[coverage] max_cells` hexagons (field `bbox`)"),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody, description = "busy: too many answers being computed; retry after Retry-After")))]
#[tracing::instrument(skip_all)]
pub async fn coverage_geojson(
    Extension(cov): Extension<Arc<Coverage>>,
    q: QueryParams,
) -> ApiResult<Response> {
    let req = map_request(&cov, &q).await?;
    let district = req.district;
    let bbox = q
        .get("bbox")
        .map(|b| aednet_core::geo_util::BBox::parse("bbox", b))
        .transpose()?;
    let key = format!("map {req:?} {bbox:?}");
    let (answer, hit) = cov
        .answer(key, async {
            // Too many hexagons is refused before any map is built (and a grid at another
            // resolution that would be far too large, before it is built).
            let grid = cov.grid_for_request(&req).await?;
            let cells = grid
                .cells
                .iter()
                .filter(|c| {
                    district.is_none_or(|d| c.district == Some(d))
                        && bbox.is_none_or(|b| b.contains(&c.center))
                })
                .count();
            if cells > cov.config.max_cells {
                return Err(ApiError::invalid(
                    "bbox",
                    format!(
                        "{cells} cells at res {} exceed the limit of {} per answer; \
                         ask for a district_id or a bbox",
                        req.res, cov.config.max_cells
                    ),
                ));
            }
            let res = req.res;
            let handle = cov.map_for(&req).await?;
            let body = handle
                .with(&cov.state.background, move |map| {
                    geojson(map, district, bbox, res)
                })
                .await?;
            Ok(Answer {
                content_type: "application/geo+json",
                disposition: None,
                body: body.into(),
            })
        })
        .await?;
    Ok(answer.into_response(hit))
}

fn geojson(
    map: &aednet_coverage::CoverageMap,
    district: Option<i64>,
    bbox: Option<aednet_core::geo_util::BBox>,
    res: u8,
) -> String {
    let mut features = Vec::new();
    for (i, c) in map.grid().cells.iter().enumerate() {
        if district.is_some_and(|d| c.district != Some(d))
            || bbox.is_some_and(|b| !b.contains(&c.center))
        {
            continue;
        }
        let v = map.view(i as u32);
        let mut ring: Vec<[f64; 2]> = c
            .cell
            .boundary()
            .iter()
            .map(|ll| [round6(ll.lng()), round6(ll.lat())])
            .collect();
        if let Some(first) = ring.first().copied() {
            ring.push(first);
        }
        features.push(json!({
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {
                "cell": v.cell, "time_s": v.time_s, "covered": v.covered,
                "population": (v.population * 10.0).round() / 10.0,
                "aed_id": v.aed_id, "district_id": c.district,
            }
        }));
    }
    json!({
        "type": "FeatureCollection",
        "features": features,
        "summary": summary_json(map, district, res),
    })
    .to_string()
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// `GET /api/v1/coverage/weekly`: share for each hour of the week, actual and if every AED
/// were 24/7.
#[utoipa::path(get, path = "/api/v1/coverage/weekly", tag = "coverage",
    params(("district_id" = Option<i64>, Query), ("mode" = Option<String>, Query), ("budget_s" = Option<f64>, Query)),
    responses((status = 200, description = "{timezone, hours: [{hour, share, share_all_24_7}]}"), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn weekly(
    Extension(cov): Extension<Arc<Coverage>>,
    q: QueryParams,
) -> ApiResult<Response> {
    let req = map_request(&cov, &q).await?;
    let district = req.district;
    let key = format!("weekly {req:?}");
    let (answer, hit) = cov
        .answer(key, async {
            let tz = cov.tz();
            let handle = cov.map_for(&req).await?;
            let hours = handle
                .with(&cov.state.background, move |map| {
                    map.weekly(tz, 1, |c| {
                        district.is_none_or(|d| c.district == Some(d)).then_some(0)
                    })
                    .remove(0)
                })
                .await?;
            let hours: Vec<Value> = hours
                .iter()
                .map(|h| {
                    json!({"hour": h.hour, "at": h.at, "share": h.share, "share_all_24_7": h.share_all_24_7,
                        "covered_population": h.covered_population.round()})
                })
                .collect();
            Ok(Answer::json(
                json!({"timezone": tz.name(), "district_id": district, "hours": hours})
                    .to_string(),
            ))
        })
        .await?;
    Ok(answer.into_response(hit))
}
