//! `/api/v1/stations`: scenic-area aid stations, 博爱驿站, school and community stations, bus
//! first-aid kits. Public read (without the contact person's name); maintenance and admin write.

use aednet_core::station::{Station, StationInput, StationKind};
use aednet_core::{Event, Role};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{IdPath, JsonBody, Params};
use crate::output::{item_response, list_query, page_response, point, Format, Geo, PageBody};
use crate::state::AppState;

const WRITERS: &[Role] = &[Role::Admin, Role::Maintenance];
const STAFF: &[Role] = &[
    Role::Admin,
    Role::Maintenance,
    Role::Dispatcher,
    Role::Planner,
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/stations", get(list_stations).post(create_station))
        .route(
            "/api/v1/stations/{id}",
            get(get_station).put(replace_station).delete(delete_station),
        )
}

impl Geo for Station {
    fn id(&self) -> i64 {
        self.id
    }
    fn geometry(&self) -> Option<Value> {
        Some(point(self.data.location))
    }
}

fn visible(mut s: Station, caller: &Caller) -> Station {
    if !caller.is(STAFF) {
        s.data.redact_personal();
    }
    s
}

#[utoipa::path(get, path = "/api/v1/stations", tag = "stations",
    params(("bbox" = Option<String>, Query), ("district_id" = Option<i64>, Query),
        ("kind" = Option<StationKind>, Query), ("cursor" = Option<String>, Query),
        ("limit" = Option<u32>, Query), ("format" = Option<String>, Query)),
    responses((status = 200, body = PageBody<Station>), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list_stations(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let format = Format::negotiate(&headers, &params)?;
    let mut q = list_query(&params)?;
    q.kind = params
        .get("kind")
        .map(|k| {
            StationKind::parse(k)
                .ok_or_else(|| ApiError::bad_request("kind", format!("unknown kind '{k}'")))
        })
        .transpose()?;
    let mut page = state.store.list_stations(&q).await?;
    page.items = page
        .items
        .into_iter()
        .map(|s| visible(s, &caller))
        .collect();
    Ok(page_response(page, format))
}

#[utoipa::path(get, path = "/api/v1/stations/{id}", tag = "stations", params(("id" = i64, Path)),
    responses((status = 200, body = Station), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller, headers, params))]
pub async fn get_station(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let format = Format::negotiate(&headers, &params)?;
    let s = state
        .store
        .get_station(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(item_response(&visible(s, &caller), format))
}

#[utoipa::path(post, path = "/api/v1/stations", tag = "stations", request_body = StationInput,
    security(("bearer" = [])),
    responses((status = 201, body = Station), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create_station(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<StationInput>,
) -> ApiResult<Response> {
    caller.require(WRITERS)?;
    let data = input.validate(state.clock.now())?;
    let s = state.store.create_station(&data).await?;
    state.bus.publish(Event::StationUpserted { id: s.id });
    let location = format!("/api/v1/stations/{}", s.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(s),
    )
        .into_response())
}

#[utoipa::path(put, path = "/api/v1/stations/{id}", tag = "stations", request_body = StationInput,
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Station), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller, input))]
pub async fn replace_station(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<StationInput>,
) -> ApiResult<Response> {
    caller.require(WRITERS)?;
    let data = input.validate(state.clock.now())?;
    let s = state
        .store
        .replace_station(id, &data)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.bus.publish(Event::StationUpserted { id });
    Ok(axum::Json(s).into_response())
}

#[utoipa::path(delete, path = "/api/v1/stations/{id}", tag = "stations", params(("id" = i64, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller))]
pub async fn delete_station(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    caller.require(&[Role::Admin])?;
    if !state.store.delete_station(id).await? {
        return Err(ApiError::NotFound);
    }
    state.bus.publish(Event::StationDeleted { id });
    Ok(StatusCode::NO_CONTENT)
}
