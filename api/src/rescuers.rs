//! `/api/v1/rescuers`: certified volunteers. Personal data: never public; dispatchers read,
//! admins write. Live locations are not served here at all.

use aednet_core::rescuer::{Rescuer, RescuerInput};
use aednet_core::{Event, Role};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{IdPath, JsonBody, Params};
use crate::output::{list_query, PageBody};
use crate::state::AppState;

const READERS: &[Role] = &[Role::Admin, Role::Dispatcher];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/rescuers", get(list_rescuers).post(create_rescuer))
        .route(
            "/api/v1/rescuers/{id}",
            get(get_rescuer).put(replace_rescuer).delete(delete_rescuer),
        )
}

#[utoipa::path(get, path = "/api/v1/rescuers", tag = "rescuers",
    params(("district_id" = Option<i64>, Query), ("cursor" = Option<String>, Query), ("limit" = Option<u32>, Query)),
    security(("bearer" = [])),
    responses((status = 200, body = PageBody<Rescuer>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list_rescuers(
    State(state): State<AppState>,
    caller: Caller,
    params: Params,
) -> ApiResult<Response> {
    caller.require(READERS)?;
    let q = list_query(&params)?;
    if q.bbox.is_some() {
        // Filtering volunteers by area from a home district is fine; by coordinates it would
        // leak where they are.
        return Err(ApiError::bad_request(
            "bbox",
            "rescuers cannot be filtered by bbox",
        ));
    }
    let page = state.store.list_rescuers(&q).await?;
    let next_cursor = page.next_after.map(|c| c.to_string());
    Ok(axum::Json(PageBody {
        items: page.items,
        next_cursor,
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/rescuers/{id}", tag = "rescuers", params(("id" = i64, Path)),
    security(("bearer" = [])), responses((status = 200, body = Rescuer), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller))]
pub async fn get_rescuer(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    caller.require(READERS)?;
    let r = state
        .store
        .get_rescuer(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(axum::Json(r).into_response())
}

#[utoipa::path(post, path = "/api/v1/rescuers", tag = "rescuers", request_body = RescuerInput,
    security(("bearer" = [])),
    responses((status = 201, body = Rescuer), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create_rescuer(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<RescuerInput>,
) -> ApiResult<Response> {
    caller.require(&[Role::Admin])?;
    let r = state.store.create_rescuer(&input.validate()?).await?;
    state.bus.publish(Event::RescuerUpserted { id: r.id });
    let location = format!("/api/v1/rescuers/{}", r.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(r),
    )
        .into_response())
}

#[utoipa::path(put, path = "/api/v1/rescuers/{id}", tag = "rescuers", request_body = RescuerInput,
    params(("id" = i64, Path)), security(("bearer" = [])),
    responses((status = 200, body = Rescuer), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller, input))]
pub async fn replace_rescuer(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<RescuerInput>,
) -> ApiResult<Response> {
    caller.require(&[Role::Admin])?;
    let r = state
        .store
        .replace_rescuer(id, &input.validate()?)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.bus.publish(Event::RescuerUpserted { id });
    Ok(axum::Json(r).into_response())
}

#[utoipa::path(delete, path = "/api/v1/rescuers/{id}", tag = "rescuers", params(("id" = i64, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller))]
pub async fn delete_rescuer(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    caller.require(&[Role::Admin])?;
    if !state.store.delete_rescuer(id).await? {
        return Err(ApiError::NotFound);
    }
    state.bus.publish(Event::RescuerDeleted { id });
    // Their tokens stop working (open sockets close on the event above, on every node).
    crate::sessions::revoke_tokens_of(&state, Role::Rescuer, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
