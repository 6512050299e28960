//! `/api/v1/aeds`: the AED registry. Anyone may read (without cabinet codes); maintenance and
//! admin write and see codes.

use aednet_core::aed::{Aed, AedInput, Readiness, ReadinessStatus};
use aednet_core::{Event, Role};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{IdPath, JsonBody, Params};
use crate::output::{item_response, list_query, page_response, point, Format, Geo, PageBody};
use crate::state::AppState;

const WRITERS: &[Role] = &[Role::Admin, Role::Maintenance];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/aeds", get(list_aeds).post(create_aed))
        .route(
            "/api/v1/aeds/{id}",
            get(get_aed).put(replace_aed).delete(delete_aed),
        )
        .route("/api/v1/aeds/{id}/readiness", put(set_readiness))
}

impl Geo for Aed {
    fn id(&self) -> i64 {
        self.id
    }
    fn geometry(&self) -> Option<Value> {
        Some(point(self.data.location))
    }
}

fn visible(mut aed: Aed, caller: &Caller) -> Aed {
    if !caller.role.sees_cabinet_codes() {
        aed.data.redact();
    }
    aed
}

/// List AEDs, ordered by id, with keyset pagination.
#[utoipa::path(get, path = "/api/v1/aeds", tag = "aeds",
    params(
        ("bbox" = Option<String>, Query, description = "min_lon,min_lat,max_lon,max_lat"),
        ("district_id" = Option<i64>, Query), ("status" = Option<ReadinessStatus>, Query),
        ("source" = Option<String>, Query),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
        ("limit" = Option<u32>, Query, description = "1..=1000, default 100"),
        ("format" = Option<String>, Query, description = "json (default) or geojson"),
    ),
    responses((status = 200, body = PageBody<Aed>), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list_aeds(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let format = Format::negotiate(&headers, &params)?;
    let mut q = list_query(&params)?;
    q.status = params
        .get("status")
        .map(|s| {
            ReadinessStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request("status", format!("unknown status '{s}'")))
        })
        .transpose()?;
    let mut page = state.store.list_aeds(&q).await?;
    page.items = page
        .items
        .into_iter()
        .map(|a| visible(a, &caller))
        .collect();
    Ok(page_response(page, format))
}

#[utoipa::path(get, path = "/api/v1/aeds/{id}", tag = "aeds",
    params(("id" = i64, Path)),
    responses((status = 200, body = Aed), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller, headers, params))]
pub async fn get_aed(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let format = Format::negotiate(&headers, &params)?;
    let aed = state.store.get_aed(id).await?.ok_or(ApiError::NotFound)?;
    Ok(item_response(&visible(aed, &caller), format))
}

#[utoipa::path(post, path = "/api/v1/aeds", tag = "aeds", request_body = AedInput,
    security(("bearer" = [])),
    responses((status = 201, body = Aed), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create_aed(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<AedInput>,
) -> ApiResult<Response> {
    caller.require(WRITERS)?;
    let data = input.validate(state.clock.now())?;
    let aed = state.store.create_aed(&data).await?;
    state.bus.publish(Event::AedUpserted { id: aed.id });
    let location = format!("/api/v1/aeds/{}", aed.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(visible(aed, &caller)),
    )
        .into_response())
}

/// Replaces an AED. Readiness is kept unless `readiness_status` is given: the record's fields
/// are written without it (telemetry that arrives meanwhile is never overwritten by a copy), and
/// a given readiness is written by the readiness writer like `PUT …/readiness`.
#[utoipa::path(put, path = "/api/v1/aeds/{id}", tag = "aeds", request_body = AedInput,
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Aed), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller, input))]
pub async fn replace_aed(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<AedInput>,
) -> ApiResult<Response> {
    caller.require(WRITERS)?;
    let set_readiness = input.readiness_status.is_some();
    let data = input.validate(state.clock.now())?;
    let mut aed = state
        .store
        .replace_aed(id, &data)
        .await?
        .ok_or(ApiError::NotFound)?;
    if set_readiness {
        aed = state
            .store
            .set_aed_readiness(id, &data.readiness, "api")
            .await?
            .ok_or(ApiError::NotFound)?;
    }
    state.bus.publish(Event::AedUpserted { id });
    if set_readiness {
        state.bus.publish(Event::AedReadinessChanged {
            id,
            status: aed.data.readiness.status,
        });
    }
    Ok(axum::Json(visible(aed, &caller)).into_response())
}

#[utoipa::path(delete, path = "/api/v1/aeds/{id}", tag = "aeds", params(("id" = i64, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller))]
pub async fn delete_aed(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    caller.require(&[Role::Admin])?;
    if !state.store.delete_aed(id).await? {
        return Err(ApiError::NotFound);
    }
    state.bus.publish(Event::AedDeleted { id });
    // The device's tokens stop working (its socket closes on the event above, on every node).
    crate::sessions::revoke_tokens_of(&state, Role::Device, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadinessInput {
    pub status: ReadinessStatus,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Sets readiness by hand (a guardian check, a repair). Telemetry sets it automatically. The
/// write bumps the AED's readiness revision: the device gateway (on every node) compares the
/// device's next message with this, not with its own earlier copy.
#[utoipa::path(put, path = "/api/v1/aeds/{id}/readiness", tag = "aeds", request_body = ReadinessInput,
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Aed), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller, input))]
pub async fn set_readiness(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<ReadinessInput>,
) -> ApiResult<Response> {
    caller.require(WRITERS)?;
    let reason = aednet_core::validate::clean(input.reason);
    aednet_core::validate::max_len("reason", &reason, 500)?;
    let readiness = Readiness {
        status: input.status,
        reason,
        since: state.clock.now(),
    };
    let aed = state
        .store
        .set_aed_readiness(id, &readiness, "api")
        .await?
        .ok_or(ApiError::NotFound)?;
    state.bus.publish(Event::AedReadinessChanged {
        id,
        status: input.status,
    });
    Ok(axum::Json(visible(aed, &caller)).into_response())
}
