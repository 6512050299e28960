//! `/api/v1/tokens`: admins issue and revoke bearer tokens. The secret appears once, in the
//! creation response, and is never stored or logged.

use aednet_core::Role;
use aednet_store::TokenRecord;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{new_token, Caller};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{IdPath, JsonBody};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route(
            "/api/v1/tokens/{id}",
            delete(revoke_token).patch(change_token),
        )
        .route("/api/v1/me", get(whoami))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenInput {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub subject_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// Shown once. Store it now: only its hash is kept.
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub subject_id: Option<i64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<TokenRecord> for TokenView {
    fn from(t: TokenRecord) -> Self {
        Self {
            id: t.id,
            name: t.name,
            role: t.role,
            subject_id: t.subject_id,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = TokenInput, security(("bearer" = [])),
    responses((status = 201, body = CreatedToken), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<TokenInput>,
) -> ApiResult<Response> {
    caller.require(&[Role::Admin])?;
    let name = input.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::invalid("name", "must be 1 to 100 characters"));
    }
    if input.role == Role::Public {
        return Err(ApiError::invalid("role", "public needs no token"));
    }
    let (secret, new) = new_token(name, input.role, input.subject_id);
    let rec = state.store.create_token(&new).await?;
    let body = CreatedToken {
        id: rec.id,
        name: rec.name,
        role: rec.role,
        token: secret,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = Vec<TokenView>), (status = 403, body = ErrorBody)))]
#[tracing::instrument(skip_all)]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<TokenView>>> {
    caller.require(&[Role::Admin])?;
    Ok(Json(
        state
            .store
            .list_tokens()
            .await?
            .into_iter()
            .map(TokenView::from)
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    security(("bearer" = [])), responses((status = 204), (status = 404, body = ErrorBody)))]
#[tracing::instrument(skip(state, caller))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<StatusCode> {
    caller.require(&[Role::Admin])?;
    if state.store.revoke_token(id).await? {
        // Verified tokens are cached briefly; a revocation takes effect at once here and, on
        // a cluster, on the other nodes as soon as they hear of it.
        state.tokens.clear();
        state.bus.publish(aednet_core::Event::TokenRevoked { id });
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenChange {
    pub role: Role,
}

#[utoipa::path(patch, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = i64, Path)),
    request_body = TokenChange, security(("bearer" = [])),
    responses((status = 200, body = TokenView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
/// Gives a token another role. Its open WebSockets close (4401) on every node: the client
/// reconnects with the new role's rights.
#[tracing::instrument(skip(state, caller, input))]
pub async fn change_token(
    State(state): State<AppState>,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(input): JsonBody<TokenChange>,
) -> ApiResult<Json<TokenView>> {
    caller.require(&[Role::Admin])?;
    if input.role == Role::Public {
        return Err(ApiError::invalid("role", "public needs no token"));
    }
    let rec = state
        .store
        .set_token_role(id, input.role)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.tokens.clear();
    state.bus.publish(aednet_core::Event::TokenChanged { id });
    Ok(Json(rec.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `public` without a token.
    pub role: Role,
    pub name: Option<String>,
    pub subject_id: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "tokens", security((), ("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
/// `GET /api/v1/me`: the role and name of the presented token, so a console can check a login
/// before showing itself (an unknown or revoked token is 401).
pub async fn whoami(caller: Caller) -> Json<Me> {
    Json(Me {
        role: caller.role,
        name: caller.token.as_ref().map(|t| t.name.clone()),
        subject_id: caller.token.as_ref().and_then(|t| t.subject_id),
    })
}
