//! `POST /api/v1/plan`: where the next units should go, validated field by field.

use std::sync::Arc;

use aednet_core::{LatLon, Role};
use aednet_coverage::{plan, plan_for_share, Candidate, PlanRequest, RescuerModel};
use axum::extract::Extension;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use super::config::CoverageConfig;
use super::live::Coverage;
use super::queries::MapRequest;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonBody;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CandidateInput {
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// New units to place (with `target_share`: at most; default the configured maximum).
    #[serde(default)]
    pub add: Option<u32>,
    /// The inverse question: the fewest new units that bring this share of the people (0–1)
    /// within the budget, and the rescuers that must be on duty to bring them in time.
    #[serde(default)]
    pub target_share: Option<f64>,
    #[serde(default)]
    pub district_id: Option<i64>,
    /// Candidate sites (e.g. public buildings); default: every cell centre in scope.
    #[serde(default)]
    pub candidates: Option<Vec<CandidateInput>>,
    /// Existing units that may move.
    #[serde(default)]
    pub relocate: Option<u32>,
    /// Suggest AEDs to convert to 24/7 cabinets.
    #[serde(default)]
    pub suggest_24_7: Option<bool>,
    /// Plan against the network as it is at this time (default now).
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
}

/// Most relocations per request.
pub const MAX_RELOCATE: u32 = 50;
/// Conversions listed when asked.
pub const CONVERSIONS_LISTED: usize = 20;

/// Turns the request into the library's, validating each field.
pub fn plan_request(
    input: PlanInput,
    config: &CoverageConfig,
    district_exists: impl Fn(i64) -> bool,
    tz: Tz,
) -> Result<PlanRequest, ApiError> {
    if let Some(t) = input.target_share {
        if !(t > 0.0 && t <= 1.0) {
            return Err(ApiError::invalid(
                "target_share",
                "target_share must be above 0 and at most 1",
            ));
        }
    }
    let add = match (input.add, input.target_share) {
        (Some(a), _) => a as usize,
        (None, Some(_)) => config.max_plan_add,
        (None, None) => {
            return Err(ApiError::invalid(
                "add",
                "add is required (or target_share)",
            ))
        }
    };
    if add > config.max_plan_add {
        return Err(ApiError::invalid(
            "add",
            format!("add must be at most {}", config.max_plan_add),
        ));
    }
    if input.relocate.unwrap_or(0) > MAX_RELOCATE {
        return Err(ApiError::invalid(
            "relocate",
            format!("relocate must be at most {MAX_RELOCATE}"),
        ));
    }
    if let Some(d) = input.district_id {
        if !district_exists(d) {
            return Err(ApiError::invalid("district_id", format!("no district {d}")));
        }
    }
    let candidates = match input.candidates {
        Some(list) => {
            if list.len() > config.max_candidates {
                return Err(ApiError::invalid(
                    "candidates",
                    format!("at most {} candidates", config.max_candidates),
                ));
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, c) in list.into_iter().enumerate() {
                let pos = LatLon::named(
                    c.lat,
                    c.lon,
                    &format!("candidates[{i}].lat"),
                    &format!("candidates[{i}].lon"),
                )?;
                if c.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
                    return Err(ApiError::invalid(
                        format!("candidates[{i}].name"),
                        "name is longer than 200 characters",
                    ));
                }
                out.push(Candidate { pos, name: c.name });
            }
            Some(out)
        }
        None => None,
    };
    Ok(PlanRequest {
        add,
        district: input.district_id,
        candidates,
        relocate: input.relocate.unwrap_or(0) as usize,
        suggest_24_7: if input.suggest_24_7.unwrap_or(false) {
            CONVERSIONS_LISTED
        } else {
            0
        },
        tz: Some(tz),
    })
}

/// `POST /api/v1/plan` (planner, admin): where the next units should go.
#[utoipa::path(post, path = "/api/v1/plan", tag = "coverage", request_body = PlanInput,
    security(("bearer" = [])),
    responses((status = 200, description = "{before, after, sites, relocations, conversions_24_7}; with target_share: {target_share, reached, before, after, aeds_to_add, sites, rescuers}"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn plan_handler(
    Extension(cov): Extension<Arc<Coverage>>,
    caller: Caller,
    JsonBody(input): JsonBody<PlanInput>,
) -> ApiResult<Response> {
    caller.require(&[Role::Planner, Role::Admin])?;
    cov.wait_ready().await;
    let at = input.at;
    let target = input.target_share;
    let req = plan_request(input, &cov.config, |d| cov.district_exists(d), cov.tz())?;
    let handle = cov
        .map_for(&MapRequest {
            res: cov.config.res,
            params: cov.params,
            at,
            district: None,
        })
        .await?;
    if let Some(target) = target {
        let result = handle
            .with(&cov.state.background, move |map| {
                plan_for_share(map, &req, target, &RescuerModel::default())
            })
            .await?;
        return Ok(Json(result).into_response());
    }
    let result = handle
        .with(&cov.state.background, move |map| plan(map, &req))
        .await?;
    Ok(Json(result).into_response())
}
