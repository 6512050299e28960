//! `/api/v1/districts`: administrative areas with population and targets. Public read;
//! planners and admins write.

use aednet_core::district::{District, DistrictInput};
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
use crate::output::{item_response, list_query, page_response, Format, Geo, PageBody};
use crate::state::AppState;

const WRITERS: &[Role] = &[Role::Admin, Role::Planner];

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/districts",
            get(list_districts).post(create_district),
        )
        .route(
            "/api/v1/districts/{id}",
            get(get_district)
                .put(replace_district)
                .delete(delete_district),
        )
}

impl Geo for District {
    fn id(&self) -> i64 {
        self.id
    }
    fn geometry(&self) -> Option<Value> {
        self.data
            .boundary
            .as_ref()
            .and_then(|g| serde_json::to_value(g).ok())
    }
    const GEOMETRY_KEYS: &'static [&'static str] = &["boundary"];
    /// `label`: `[lon, lat]` inside the largest part, where maps write the name.
    fn extra_properties(&self, props: &mut serde_json::Map<String, Value>) {
        if let Some(p) = self.data.label_point() {
            props.insert("label".into(), serde_json::json!([p.lon, p.lat]));
        }
    }
}

#[utoipa::path(get, path = "/api/v1/districts", tag = "districts",
    params(("cursor" = Option<String>, Query), ("limit" = Option<u32>, Query), ("format" = Option<String>, Query)),
    responses((status = 200, body = PageBody<District>), (status = 400, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list_districts(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let format = Format::negotiate(&headers, &params)?;
    let q = list_query(&params)?;
    Ok(page_response(state.store.list_districts(&q).await?, format))
}

#[utoipa::path(get, path = "/api/v1/districts/{id}", tag = "districts", params(("id" = i64, Path)),
    responses((status = 200, body = District), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, headers, params))]
pub async fn get_district(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Response> {
    let format = Format::negotiate(&headers, &params)?;
    let d = state
        .store
        .get_district(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(item_response(&d, format))
}

#[utoipa::path(post, path = "/api/v1/districts", tag = "districts", request_body = DistrictInput,
    security(("bearer" = [])),
    responses((status = 201, body = District), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create_district(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<DistrictInput>,
) -> ApiResult<Response> {
    caller.require(WRITERS)?;
    let d = state.store.create_district(&input.validate()?).await?;
    state.bus.publish(Event::DistrictUpserted { id: d.id });
    let location = format!("/api/v1/districts/{}", d.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(d),
    )
        .into_response())
}

#[utoipa::path(put, path = "/api/v1/districts/{id}", tag = "districts", request_body = DistrictInput,
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = District), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller, input))]
pub async fn replace_district(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<DistrictInput>,
) -> ApiResult<Response> {
    caller.require(WRITERS)?;
    let d = state
        .store
        .replace_district(id, &input.validate()?)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.bus.publish(Event::DistrictUpserted { id });
    Ok(axum::Json(d).into_response())
}

#[utoipa::path(delete, path = "/api/v1/districts/{id}", tag = "districts", params(("id" = i64, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller))]
pub async fn delete_district(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    caller.require(&[Role::Admin])?;
    if !state.store.delete_district(id).await? {
        return Err(ApiError::NotFound);
    }
    state.bus.publish(Event::DistrictDeleted { id });
    Ok(StatusCode::NO_CONTENT)
}
