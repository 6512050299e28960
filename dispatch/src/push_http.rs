//! The rescuer's delivery endpoints: the VAPID key to subscribe with, their own Web Push
//! subscriptions (`POST`/`GET`/`DELETE /api/v1/me/push-subscriptions`; personal data: only
//! ever shown to their owner, never with the keys) and `POST /api/v1/me/received`, with which
//! the app (or its service worker, after a push) confirms it has a message.

use std::sync::Arc;

use aednet_api::auth::Caller;
use aednet_api::extract::JsonBody;
use aednet_api::{ApiError, ApiResult, AppState};
use aednet_core::Role;
use aednet_store::{Channel, MessageKey, MessageKind};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::engine::Engine;

/// A rescuer keeps at most this many subscriptions (phones, browsers).
const MAX_SUBSCRIPTIONS: usize = 10;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me/push", get(push_info))
        .route(
            "/api/v1/me/push-subscriptions",
            get(list_subscriptions).post(subscribe).delete(unsubscribe),
        )
        .route("/api/v1/me/received", post(received))
}

fn rescuer_id(caller: &Caller) -> ApiResult<i64> {
    caller.subject(Role::Rescuer)
}

#[utoipa::path(get, path = "/api/v1/me/push", tag = "rescuers", security(("bearer" = [])),
    responses((status = 200, description = r#"{"vapid_public_key": "…" or null, "ack_timeout_s": 3}"#)))]
/// `GET /api/v1/me/push`: the key a browser subscribes with (`applicationServerKey`); `null`
/// when the server has no Web Push configured.
pub(crate) async fn push_info(
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
) -> ApiResult<Response> {
    rescuer_id(&caller)?;
    let n = e.notifier();
    Ok(Json(json!({
        "vapid_public_key": n.as_ref().and_then(|n| n.vapid_public_key()),
        "ack_timeout_s": n.as_ref().map(|n| n.config().ack_timeout_s),
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubscriptionKeys {
    p256dh: String,
    auth: String,
}

/// The browser's `PushSubscription.toJSON()`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct NewSubscription {
    endpoint: String,
    keys: SubscriptionKeys,
    #[serde(default)]
    #[allow(dead_code)]
    expiration_time: Option<serde_json::Value>,
}

#[utoipa::path(post, path = "/api/v1/me/push-subscriptions", tag = "rescuers",
    request_body(content = serde_json::Value, description = r#"PushSubscription.toJSON(): {"endpoint": "https://…", "keys": {"p256dh": "…", "auth": "…"}}"#),
    security(("bearer" = [])),
    responses((status = 201, description = "Stored"), (status = 422, body = aednet_api::error::ErrorBody), (status = 409, body = aednet_api::error::ErrorBody)))]
/// `POST /api/v1/me/push-subscriptions`: stores the subscription for the caller (the same
/// endpoint again replaces it).
pub(crate) async fn subscribe(
    State(state): State<AppState>,
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    JsonBody(input): JsonBody<NewSubscription>,
) -> ApiResult<Response> {
    let id = rescuer_id(&caller)?;
    let allow_http = e
        .notifier()
        .is_some_and(|n| n.config().web_push.allow_http_endpoints);
    let url = aednet_notify::Url::parse(&input.endpoint)
        .map_err(|_| ApiError::invalid("endpoint", "endpoint must be an absolute URL"))?;
    if input.endpoint.len() > 2048 {
        return Err(ApiError::invalid(
            "endpoint",
            "endpoint is longer than 2048 characters",
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => {
            return Err(ApiError::invalid(
                "endpoint",
                "endpoint must be an https URL",
            ))
        }
    }
    if let Err(err) = aednet_notify::webpush::UaKeys::decode(&input.keys.p256dh, &input.keys.auth) {
        let field = match err {
            aednet_notify::webpush::PushError::Key("auth") => "keys.auth",
            _ => "keys.p256dh",
        };
        return Err(ApiError::invalid(
            field,
            "p256dh must be a base64url P-256 public key (65 bytes), auth 16 bytes base64url",
        ));
    }
    let existing = state.store.push_subscriptions(id).await?;
    if existing.len() >= MAX_SUBSCRIPTIONS && !existing.iter().any(|s| s.endpoint == input.endpoint)
    {
        return Err(ApiError::Conflict {
            field: Some("endpoint".into()),
            message: format!(
                "at most {MAX_SUBSCRIPTIONS} subscriptions per rescuer: delete one first"
            ),
        });
    }
    let sub = state
        .store
        .put_push_subscription(id, &input.endpoint, &input.keys.p256dh, &input.keys.auth)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": sub.id, "endpoint": sub.endpoint, "created_at": sub.created_at})),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/me/push-subscriptions", tag = "rescuers", security(("bearer" = [])),
    responses((status = 200, description = "The caller's subscriptions (endpoints, without keys)")))]
pub(crate) async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Response> {
    let id = rescuer_id(&caller)?;
    let items: Vec<_> = state
        .store
        .push_subscriptions(id)
        .await?
        .into_iter()
        .map(|s| json!({"id": s.id, "endpoint": s.endpoint, "created_at": s.created_at}))
        .collect();
    Ok(Json(json!({"count": items.len(), "items": items})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Unsubscribe {
    endpoint: String,
}

#[utoipa::path(delete, path = "/api/v1/me/push-subscriptions", tag = "rescuers",
    request_body(content = serde_json::Value, description = r#"{"endpoint": "https://…"}"#),
    security(("bearer" = [])),
    responses((status = 204, description = "Removed"), (status = 404, body = aednet_api::error::ErrorBody)))]
pub(crate) async fn unsubscribe(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(input): JsonBody<Unsubscribe>,
) -> ApiResult<Response> {
    let id = rescuer_id(&caller)?;
    if state
        .store
        .delete_push_subscription(id, &input.endpoint)
        .await?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::NotFound)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Received {
    pub(crate) incident_id: i64,
    #[serde(default)]
    pub(crate) offer_id: Option<i64>,
    /// `offer`, `stand_down` or `cancel`.
    pub(crate) message: MessageKind,
    /// The channel it came by: `ws`, `web_push` or `webhook` (default `web_push`).
    #[serde(default)]
    pub(crate) via: Option<Channel>,
}

impl Received {
    pub(crate) fn key(&self, rescuer_id: i64) -> ApiResult<MessageKey> {
        let offer_id = match (self.message, self.offer_id) {
            (MessageKind::Offer, Some(o)) => o,
            (MessageKind::Offer, None) => {
                return Err(ApiError::invalid(
                    "offer_id",
                    "offer_id is needed for an offer",
                ))
            }
            _ => 0,
        };
        Ok(MessageKey {
            incident_id: self.incident_id,
            rescuer_id,
            message: self.message,
            offer_id,
        })
    }
}

#[utoipa::path(post, path = "/api/v1/me/received", tag = "rescuers",
    request_body(content = serde_json::Value, description = r#"{"incident_id": 42, "offer_id": 2, "message": "offer", "via": "web_push"}"#),
    security(("bearer" = [])),
    responses((status = 204, description = "Recorded as delivered"), (status = 404, body = aednet_api::error::ErrorBody), (status = 422, body = aednet_api::error::ErrorBody)))]
/// `POST /api/v1/me/received`: the app has the message; it will not be pushed again.
pub(crate) async fn received(
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    JsonBody(input): JsonBody<Received>,
) -> ApiResult<Response> {
    let id = rescuer_id(&caller)?;
    let key = input.key(id)?;
    e.confirm_received(key, input.via.unwrap_or(Channel::WebPush))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
