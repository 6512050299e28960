//! Dispatcher and rescuer endpoints over the [`Engine`], and the rescuer's live channel.

use std::sync::Arc;

use aednet_api::auth::Caller;
use aednet_api::extract::{IdPath, JsonBody};
use aednet_api::{ApiError, ApiResult, AppState};
use aednet_core::{LatLon, Role};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::engine::{Engine, EngineError};
use crate::incident::{Answer, DispatchError, Outcome};

const DISPATCH: &[Role] = &[Role::Admin, Role::Dispatcher];

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound | EngineError::Dispatch(DispatchError::UnknownOffer) => {
                ApiError::NotFound
            }
            EngineError::Dispatch(DispatchError::NotYourOffer) => ApiError::Forbidden,
            EngineError::Dispatch(DispatchError::IncidentClosed) => ApiError::Conflict {
                field: None,
                message: "the incident is closed".into(),
            },
            EngineError::Dispatch(DispatchError::Conflict(m)) => ApiError::Conflict {
                field: None,
                message: m,
            },
            EngineError::Store(s) => s.into(),
        }
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create, list, get_one, close, cancel, my_offers, answer),
    tags((name = "dispatch", description = "Incidents for dispatchers; offers reach rescuers over /ws/rescuer")),
)]
pub struct ApiDoc;

pub fn router(engine: Arc<Engine>) -> Router<AppState> {
    Router::new()
        .route("/api/v1/incidents", get(list).post(create))
        .route("/api/v1/incidents/{id}", get(get_one))
        .route("/api/v1/incidents/{id}/close", post(close))
        .route("/api/v1/incidents/{id}/cancel", post(cancel))
        .route("/api/v1/me/offers", get(my_offers))
        .route(
            "/api/v1/me/offers/{incident}/{offer}/{answer}",
            post(answer),
        )
        .route("/ws/rescuer", get(rescuer_socket))
        .route("/ws/dispatch", get(dispatch_socket))
        .layer(Extension(engine))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIncident {
    pub lat: f64,
    pub lon: f64,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/incidents", tag = "dispatch",
    request_body(content = serde_json::Value, description = r#"{"lat": 28.97, "lon": 118.87, "address": "…", "notes": "…"}"#),
    security(("bearer" = [])),
    responses((status = 201, description = "The incident with the first wave's offers"), (status = 422, body = aednet_api::error::ErrorBody)))]
/// `POST /api/v1/incidents` (dispatcher): stores it and alerts the first wave.
async fn create(
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    JsonBody(input): JsonBody<NewIncident>,
) -> ApiResult<Response> {
    caller.require(DISPATCH)?;
    let at = LatLon::new(input.lat, input.lon)?;
    let address = aednet_core::validate::clean(input.address);
    aednet_core::validate::max_len("address", &address, 500)?;
    let notes = aednet_core::validate::clean(input.notes);
    aednet_core::validate::max_len("notes", &notes, 2000)?;
    let inc = e.create(at, address, notes).await?;
    Ok((StatusCode::CREATED, Json(inc)).into_response())
}

#[utoipa::path(get, path = "/api/v1/incidents", tag = "dispatch", security(("bearer" = [])),
    responses((status = 200, description = "Open incidents")))]
async fn list(Extension(e): Extension<Arc<Engine>>, caller: Caller) -> ApiResult<Response> {
    caller.require(DISPATCH)?;
    let mut items = Vec::new();
    for id in e.open_ids() {
        items.push(e.get(id).await?);
    }
    Ok(Json(json!({"count": items.len(), "items": items})).into_response())
}

#[utoipa::path(get, path = "/api/v1/incidents/{id}", tag = "dispatch", params(("id" = i64, Path)),
    security(("bearer" = [])),
    responses((status = 200, description = "Incident, offers, audit log, responders with live ETA, AEDs nearby"), (status = 404, body = aednet_api::error::ErrorBody)))]
/// The incident with its audit log as stored.
async fn get_one(
    State(state): State<AppState>,
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    caller.require(DISPATCH)?;
    let inc = e.get(id).await?;
    let audit: Vec<serde_json::Value> = state
        .store
        .incident_audit(id)
        .await?
        .iter()
        .filter_map(|s| serde_json::from_str(s).ok())
        .collect();
    let mut body = serde_json::to_value(&inc).unwrap_or_default();
    body["audit_log"] = json!(audit);
    let live = e.live_view(&inc).await;
    body["responders"] = live["responders"].clone();
    body["aeds_nearby"] = live["aeds_nearby"].clone();
    Ok(Json(body).into_response())
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/close", tag = "dispatch", params(("id" = i64, Path)),
    request_body(content = serde_json::Value, description = r#"{"aed_applied": true, "shock_delivered": false, "handed_to_ems": true}"#),
    security(("bearer" = [])),
    responses((status = 200, description = "Closed; everyone still on the way is stood down"), (status = 409, body = aednet_api::error::ErrorBody)))]
async fn close(
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    IdPath(id): IdPath,
    JsonBody(outcome): JsonBody<Outcome>,
) -> ApiResult<Response> {
    caller.require(DISPATCH)?;
    Ok(Json(e.close(id, Some(outcome)).await?).into_response())
}

#[utoipa::path(post, path = "/api/v1/incidents/{id}/cancel", tag = "dispatch", params(("id" = i64, Path)),
    security(("bearer" = [])), responses((status = 200, description = "Cancelled"), (status = 409, body = aednet_api::error::ErrorBody)))]
async fn cancel(
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    IdPath(id): IdPath,
) -> ApiResult<Response> {
    caller.require(DISPATCH)?;
    Ok(Json(e.close(id, None).await?).into_response())
}

fn rescuer_id(caller: &Caller) -> ApiResult<i64> {
    caller.subject(Role::Rescuer)
}

#[utoipa::path(get, path = "/api/v1/me/offers", tag = "rescuers", security(("bearer" = [])),
    responses((status = 200, description = "This rescuer's pending and accepted offers")))]
async fn my_offers(Extension(e): Extension<Arc<Engine>>, caller: Caller) -> ApiResult<Response> {
    let id = rescuer_id(&caller)?;
    let items = e.offers_for(id).await;
    Ok(Json(json!({"count": items.len(), "items": items})).into_response())
}

#[utoipa::path(post, path = "/api/v1/me/offers/{incident}/{offer}/{answer}", tag = "rescuers",
    params(("incident" = i64, Path), ("offer" = u32, Path), ("answer" = String, Path, description = "accept, decline or arrived")),
    security(("bearer" = [])),
    responses((status = 200, description = "The offer; `cabinet_code` for an accepted fetch of a locked cabinet"),
        (status = 403, body = aednet_api::error::ErrorBody), (status = 404, body = aednet_api::error::ErrorBody), (status = 409, body = aednet_api::error::ErrorBody)))]
/// `POST /api/v1/me/offers/{incident}/{offer}/{accept|decline|arrived}`: idempotent; the
/// cabinet code comes back only to an accepted fetcher.
async fn answer(
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    Path((incident, offer, answer)): Path<(i64, u32, String)>,
) -> ApiResult<Response> {
    let id = rescuer_id(&caller)?;
    let a = match answer.as_str() {
        "accept" => Answer::Accept,
        "decline" => Answer::Decline,
        "arrived" => Answer::Arrived,
        _ => return Err(ApiError::NotFound),
    };
    Ok(Json(e.answer(incident, offer, id, a).await?).into_response())
}

/// `GET /ws/rescuer` (rescuer token): pending offers first (a reconnect resumes them), then
/// offers and stand-downs as they happen.
async fn rescuer_socket(
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    ws: WebSocketUpgrade,
) -> Response {
    let id = match rescuer_id(&caller) {
        Ok(id) => id,
        Err(err) => return err.into_response(),
    };
    let rx = e.subscribe(id);
    ws.max_message_size(4096)
        .on_upgrade(move |socket| serve(socket, e, id, rx))
}

async fn serve(
    mut socket: WebSocket,
    e: Arc<Engine>,
    id: i64,
    mut rx: tokio::sync::broadcast::Receiver<String>,
) {
    for m in e.offers_for(id).await {
        if socket
            .send(Message::Text(m.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
    }
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Ok(text) => {
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    for m in e.offers_for(id).await {
                        if socket.send(Message::Text(m.to_string().into())).await.is_err() {
                            return;
                        }
                    }
                }
                Err(RecvError::Closed) => break,
            },
            m = socket.recv() => {
                if !matches!(m, Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Text(_)))) {
                    break;
                }
            }
        }
    }
}

/// `GET /ws/dispatch` (dispatcher or admin): every incident change as it happens.
async fn dispatch_socket(
    Extension(e): Extension<Arc<Engine>>,
    caller: Caller,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(err) = caller.require(DISPATCH) {
        return err.into_response();
    }
    let mut rx = e.board();
    ws.max_message_size(4096).on_upgrade(move |mut socket| async move {
        loop {
            tokio::select! {
                m = rx.recv() => match m {
                    Ok(text) => {
                        if socket.send(Message::Text(text.into())).await.is_err() {
                            break;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        let resync = json!({"type": "resync", "missed": n}).to_string();
                        if socket.send(Message::Text(resync.into())).await.is_err() {
                            break;
                        }
                    }
                    Err(RecvError::Closed) => break,
                },
                m = socket.recv() => {
                    if !matches!(m, Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Text(_)))) {
                        break;
                    }
                }
            }
        }
    })
}
